"""The sign-in page, for a browser on a tutor that needs a token: the form, the cookie it sets
(tutor.web.guard signs and checks it), and the sign-out."""

from __future__ import annotations

import hmac
import html
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..config import Settings
from .guard import SESSION_COOKIE, SESSION_SECONDS, issue_session, session_key

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tutor: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:"Source Sans Pro",system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f9fafb;
color:#1f2937}}main{{max-width:26em;margin:3em auto;padding:1.4em 1.6em;background:#fff;border:1px solid #e5e7eb;
border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.06)}}h1{{font-size:1.35em;margin:0 0 .3em}}
label{{display:block;font-size:.9em;color:#4b5563;margin:.8em 0 .3em}}
input{{display:block;width:100%;font-size:1.05em;padding:.55em .7em;box-sizing:border-box;border:1px solid #d1d5db;
border-radius:8px}}button{{display:block;width:100%;margin-top:1em;font-size:1.05em;font-weight:600;padding:.6em;
border:0;border-radius:8px;background:#f97316;color:#fff;cursor:pointer}}button:hover{{background:#ea580c}}
.error{{color:#b00020;font-weight:600}}
.layers{{display:flex;height:.5em;border-radius:4px;overflow:hidden;margin:.2em 0 1em}}
.layers span{{flex:1}}</style></head>
<body><main><h1>Tutor: how AI language models are trained</h1>
<div class="layers" aria-hidden="true"><span style="background:#0072B2"></span><span style="background:#E69F00">
</span><span style="background:#6E6E6E"></span></div>
<p>Answers come from the guides. Sign in with the access token your administrator gave you.</p>
{error}<form method="post" action="{action}"><input type="hidden" name="next" value="{next}">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button></form></main></body></html>
"""


def _local_path(next_path: str) -> str:
    """Only a path on this server, so that the login form cannot send anyone elsewhere."""
    parts = urlsplit(next_path)
    if parts.scheme or parts.netloc or not next_path.startswith("/") or next_path.startswith("//"):
        return "/"
    return next_path


def login_page(request: Request, next_path: str, error: str, status: int = 200) -> HTMLResponse:
    """The form, with the path to go back to after signing in and the reason a try failed."""
    root = request.scope.get("root_path", "")
    return HTMLResponse(
        LOGIN_PAGE.format(
            action=html.escape(f"{root}/login"),
            next=html.escape(_local_path(next_path)),
            error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
        ),
        status_code=status,
    )


def login_router(settings: Settings) -> APIRouter:
    """/login (the form, and the token it posts) and /logout; public routes, left out of the API's schema."""
    router = APIRouter(include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002 (the query name)
        return login_page(request, next, "")

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        token, next_path = str(form.get("token", "")), _local_path(str(form.get("next", "/")))
        expected = settings.auth_token.get_secret_value() if settings.auth_token else ""
        if not expected or not hmac.compare_digest(token, expected):
            return login_page(request, next_path, "That token is not right.", status=401)
        root = request.scope.get("root_path", "")
        response = RedirectResponse(f"{root}{next_path}", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            issue_session(session_key(expected)),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",  # the scheme a trusted proxy was asked with (Guard)
            path=root or "/",
        )
        return response

    @router.get("/logout")
    def logout(request: Request) -> Response:
        """Forget the sign-in cookie; back to the sign-in form (or the page, when no token is set)."""
        root = request.scope.get("root_path", "")
        response = RedirectResponse(f"{root}/login" if settings.auth_token else f"{root}/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=root or "/", httponly=True, samesite="lax")
        return response

    return router
