"""edgeprof dashboard: `streamlit run app.py`. The entry only registers the pages found in views/ and the sidebar."""

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
role = auth.gate()  # booth mode: nothing below runs until the visitor has given the password

# A visitor lands on the booth's showcase, staff on the Run page. The default page is served at "/", and Streamlit then
# answers its own name ("/Run") with "Page not found": a hidden second entry of the same file takes that name.
default = "0_Booth.py" if role == "visitor" else "1_Run.py"
if role == "visitor":  # the showcase's one screen gets the whole window; the pages stay one click away (top left)
    st.set_page_config(initial_sidebar_state="collapsed")
pages = []
for file in sorted((HERE / "views").glob("[0-9]_*.py")):
    title, icon = ui.PAGES.get(file.name, (file.stem.split("_", 1)[-1].replace("_", " "), None))
    name = file.stem.split("_", 1)[-1]
    if file.name == default:
        pages.append(st.Page(f"views/{file.name}", title=title, icon=icon, default=True, url_path=f"{name}-home"))
        pages.append(st.Page(f"views/{file.name}", title=title, icon=icon, url_path=name, visibility="hidden"))
    else:
        pages.append(st.Page(f"views/{file.name}", title=title, icon=icon))

ui.get_store()  # opens (creating or migrating) the database and marks crashed runs interrupted, once per process
st.navigation(pages).run()
