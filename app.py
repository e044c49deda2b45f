"""edgeprof dashboard: `streamlit run app.py`. The entry only registers the pages found in pages/ and the sidebar."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from edgeprof import auth, heap, ui

heap.tune()  # before the runs: the server's C heap gives freed sample arrays back (edgeprof/heap.py)

# a local icon: ":material/..." page icons make the browser fetch the favicon from a font CDN, which a booth
# without internet (or a privacy-minded one) should not do
HERE = Path(__file__).resolve().parent
st.set_page_config(page_title="edgeprof", page_icon=str(HERE / "assets" / "icon.png"), layout="wide")
ui.recover_at_start()  # runs a crashed server left "running" are marked interrupted before any password is asked
auth.gate()  # booth mode: nothing below runs until the visitor has given the password

pages = []
for file in sorted((HERE / "pages").glob("[0-9]_*.py")):
    title, icon = ui.PAGES.get(file.name, (file.stem.split("_", 1)[-1].replace("_", " "), None))
    pages.append(st.Page(f"pages/{file.name}", title=title, icon=icon, default=file.name.startswith("1_")))

ui.get_store()  # opens (creating or migrating) the database and marks crashed runs interrupted, once per process
st.navigation(pages).run()
