"""Report: a study's findings (which of the paper's claims this device supports, with the numbers), its figures,
the utilization-latency correlation table, and the self-contained HTML report to download."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from edgeprof import study, ui
from edgeprof.errors import EdgeprofError
from edgeprof.study import report

VERDICT_COLOURS = {report.SUPPORTED: "green", report.NOT_SUPPORTED: "red", report.NOT_TESTABLE: "gray",
                   report.TOO_FEW: "orange"}

store = ui.page_setup()
st.title("Study report")

try:
    rows = study.list_studies(store)
except EdgeprofError as exc:
    ui.show_error(exc, "The studies cannot be listed")
    st.stop()
if not rows:
    st.info("No studies yet: run one on the Study page (or `python -m edgeprof study --preset quick`).")
    st.stop()

ids = [r["study_id"] for r in rows]
by_id = {r["study_id"]: r for r in rows}
wanted = st.query_params.get("study")
if wanted in ids and st.session_state.get("report_study") not in ids:
    st.session_state["report_study"] = wanted
sid = st.selectbox("Study", ids, key="report_study",
                   format_func=lambda s: f"{s} ({by_id[s]['status']}, {by_id[s]['done']}/{by_id[s]['cells']} cells)")


@st.cache_data(show_spinner="Analysing the study and drawing its figures...", max_entries=8)
def build(db: str, study_id: str, version: tuple) -> dict:
    """Findings, correlations, figures and the HTML page; ``version`` (cells done, status) invalidates the cache."""
    rep = report.build_report(store, study_id)
    figures = report.render_figures(rep["frame"])
    page = report.render_html(rep["meta"], rep["frame"], rep["findings"], rep["correlations"], figures)
    return {"findings": [f.to_dict() for f in rep["findings"]], "correlations": rep["correlations"],
            "overview": report.overview(rep["frame"]), "figures": figures, "html": page, "why": rep["why"],
            "uncertainty": rep["meta"]["uncertainty"]}


row = by_id[sid]
try:
    rep = build(str(store.path), sid, (row["done"], row["status"]))
except EdgeprofError as exc:
    ui.show_error(exc, "The report cannot be built")
    st.stop()

ov = rep["overview"]
if row["status"] in ("running", "interrupted", "stopped"):
    st.warning(f"This study is {row['status']} ({row['done']} of {row['cells']} cells): the findings cover the cells "
               "done so far.")
st.caption(f"{ov['cells']} cells, " + ", ".join(f"{k} {v}" for k, v in ov["by_status"].items())
           + f"; {ov['variants']} variants.")
st.download_button("Download the HTML report", data=rep["html"], file_name=f"{sid}.html", mime="text/html",
                   key="report_download", type="primary")

st.header("Findings")
st.caption(rep["uncertainty"])
for f in rep["findings"]:
    colour = VERDICT_COLOURS.get(f["verdict"], "gray")
    st.markdown(f"**{f['claim']}** :{colour}-badge[{f['verdict']}]")
    st.markdown(f["evidence"])
    if f.get("caution"):
        st.caption(f"Caution: {f['caution']}")
    if f.get("groups"):
        with st.expander(f"Per group ({len(f['groups'])})"):
            st.dataframe(pd.DataFrame(f["groups"]), hide_index=True, key=f"report_groups_{f['claim_id']}")

st.header("Utilization against latency")
st.caption("Pearson r with its 95% CI, p and n, and Spearman rho, over ok runs; 'within variant' divides each value "
           "by its variant's median, which removes the differences between models.")
st.dataframe(report.correlations_for_people(rep["correlations"]), hide_index=True, key="report_correlations")

st.header("Why: memory pressure, energy, operators")
st.caption("Per variant and limit: the share of the measured time some (or all) tasks stalled on memory, major "
           "faults per second, energy per inference and the slowest operators (cells run with profile_ops = true).")
st.dataframe(rep["why"], hide_index=True, key="report_why")

st.header("Figures")
for name, title in report.FIGURES.items():
    if name in rep["figures"]:
        st.subheader(title)
        st.image(rep["figures"][name])
    else:
        st.caption(f"{title}: not drawn, {report.WHY_NOT_DRAWN.get(name, 'nothing to draw')}.")
