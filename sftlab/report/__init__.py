"""`sftlab report`: paper-style figures and one self-contained HTML page from Aim runs.

reader (Aim -> plain `RunData`), summary (baseline / lowest / best / final per metric), figures
(matplotlib PNGs) and html (one page, images embedded) each know only the layer below them; `cli` wires
them to `python -m sftlab report`.
"""
