"""Models: the catalog (bundled manifest + user files), file inspection, preprocessing, on-device quantization and
fidelity against the FP32 parent. Submodules import their heavy dependencies (onnx, onnxruntime, Pillow) lazily.
Everything that opens a user's model beyond its graph runs in the isolated, memory-capped child (``isolated``).

Public API::

    catalog.list_models() -> list[ModelInfo]
    catalog.get_model(name) -> ModelInfo
    catalog.resolve_variant(model, precision, runtime, *, build=True, progress=None, shapes=None, fills=None,
                            data=None) -> Variant
    catalog.add_upload(data, filename, max_bytes=...) -> Path
    inspect.inspect_file(path) -> FileSpec
    quantize.quantize_onnx(src, precision, *, calib=None, progress=None, shapes=None, fills=None) -> QuantResult
    quantize.quantization_report(source, built, precision) -> dict; quantize.describe_report(report) -> str
    quantize.data_calibration(data_path, src, normalise=None) -> Calibration
    fidelity.fidelity(model_name_or_path, *, runtimes=None, threads=2, progress=None, shapes=None, fills=None,
                      data=None, normalise=None) -> list[dict]
    data.load(path, specs, normalise) -> DataSet
    isolated.run_isolated(target, *args, what, tool, hint, progress, memory_limit_mb, timeout_s, **kwargs) -> Any
    isolated.stage(what, hint=None, tool=None); isolated.PreparationFailed
"""
