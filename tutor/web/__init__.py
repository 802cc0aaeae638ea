"""The web front ends: one FastAPI server (tutor.web.app) with the JSON API, the sign-in, the Guard
in front of every route, and the Gradio page. One module per job:

- app: create_app (routes put together, refusals, health, metrics, /docs), check_exposure, serve
- api: the JSON API (/api/ask, /api/ask/stream, /api/history)
- schemas: the API's request body with this server's limits, and its documented refusals
- sse: server-sent events, and the thread that runs a blocking answer for an async route
- guard: the Guard middleware (size, identity, auth, headers) and the signed sign-in cookies
- gradio_guard: the page's events checked before Gradio sees them (no files, a session per user)
- login: the sign-in page and sign-out
- api_docs: the API reference at /docs as plain HTML
- page: the Gradio page (layout and wiring); page_events: its events; page_assets: its styles and script
- render: an answer's panel, verdict and compare column as HTML; transcript: the chat as text

The answer's JSON is the core's contract (tutor.contract); records, metrics and feedback are
tutor.records, shared with the other doors (tutor.openai_api, tutor.mcp_server).
"""
