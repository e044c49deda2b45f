"""Models: the catalog (bundled manifest + user files), file inspection, preprocessing, on-device quantization and
fidelity against the FP32 parent. Submodules import their heavy dependencies (onnx, onnxruntime, Pillow) lazily.

Public API::

    catalog.list_models() -> list[ModelInfo]
    catalog.get_model(name) -> ModelInfo
    catalog.resolve_variant(model, precision, runtime, *, build=True, progress=None) -> Variant
    catalog.add_upload(data, filename, max_bytes=...) -> Path
    inspect.inspect_file(path) -> FileSpec
    quantize.quantize_onnx(src, precision, *, calib=None, progress=None) -> QuantResult
    fidelity.fidelity(model_name_or_path, *, runtimes=None, threads=2, progress=None) -> list[dict]
"""
