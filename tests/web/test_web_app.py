"""The web app (web/) in a real Chromium against a real `peerpitch serve` with its worker.

Debian's `chromium` (installed by `make`'s test set-up) is driven by Playwright for Python
through `executable_path`: no browser is ever downloaded. One story, as the issue tells it: a
rep signs in, uploads a generated clip through the page, watches it reach `ready`, plays it
(time advances, frames are decoded), leaves feedback at the playhead with a drawn arrow and
sees it on the timeline, and asks the coach for a review; the top performer replies and marks
it helpful; the coach scores it; the rep's skill profile shows the score. Each screen is
photographed at desktop and at a 360-px phone width into var/screenshots/ (git-ignored), and
no screen may scroll sideways at 360 px.

Every wait has its own timeout, so a broken page fails in seconds instead of hanging the suite.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.live_server import LiveServer, live_server

playwright_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("PEERPITCH_TEST_CHROMIUM", "/usr/bin/chromium"))
HLS_JS = ROOT / "web" / "node_modules" / "hls.js" / "dist" / "hls.min.mjs"
SHOTS = ROOT / "var" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "peerpitch-demo"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}
STEP_MS = 20_000  # any one UI step
READY_MS = 90_000  # upload → transcoded on a busy 2-core machine

missing = [str(p) for p in (CHROMIUM, HLS_JS) if not p.exists()]
if missing and not os.environ.get("CI"):
    pytest.skip(f"run `make deps` first; missing: {', '.join(missing)}", allow_module_level=True)


# The bundled offline recogniser, so ready pitches get transcripts and captions; small parts,
# so a few-second clip is uploaded in several (in parallel, and resumable part by part).
SPEECH_ENV = {"PEERPITCH_ASR_ENGINE": "pocketsphinx", "PEERPITCH_UPLOAD_PART_SIZE": "32768"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("web"), name="pp_web", extra_env=SPEECH_ENV) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert not missing, f"missing: {missing} (make deps installs chromium and runs npm ci)"
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=LAUNCH_ARGS, timeout=STEP_MS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 3 s of a test pattern with espeak-ng speaking, so the clip gets captions."""
    folder = tmp_path_factory.mktemp("media")
    speech, path = folder / "speech.wav", folder / "pitch.mp4"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(speech),
         "Thanks for taking my call. What problem are you solving?"],
        check=True,
        timeout=60,
    )  # fmt: skip
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-i", str(speech),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-b:v", "200k", "-c:a", "aac", "-b:a", "64k", "-shortest", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


class Screen:
    """One signed-in browser context with console errors and CSP violations collected."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.context = browser.new_context(viewport=DESKTOP)
        self.context.set_default_timeout(STEP_MS)
        self.page = self.context.new_page()
        self.base_url = base_url
        self.problems: list[str] = []
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console: {m.text}")
                if m.type == "error" and "Content Security Policy" in m.text
                else None
            ),
        )

    def sign_in(self, email: str) -> None:
        self.page.goto(self.base_url + "/")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.locator("#user-name").wait_for()

    def go(self, route: str) -> None:
        self.page.goto(f"{self.base_url}/#{route}")
        self.page.locator("main .loading").wait_for(state="detached")

    def shoot(self, name: str) -> None:
        """Desktop and phone screenshots; at 360 px nothing may overflow sideways."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
        self.page.set_viewport_size(PHONE)
        try:
            width = self.page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name} is {width}px wide at 360px"
            self.page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=True)
        finally:
            self.page.set_viewport_size(DESKTOP)

    def close(self) -> None:
        self.context.close()
        assert not self.problems, self.problems


def api_login(base_url: str, email: str) -> dict[str, str]:
    r = httpx.post(
        f"{base_url}/v1/auth/token", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def play_and_check(page: Any) -> None:
    """hls.js plays the clip: its time advances and frames are decoded."""
    video = page.locator(".player video")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => document.querySelector('.player video').currentTime > 0.8", timeout=STEP_MS
    )
    assert video.evaluate("v => v.getVideoPlaybackQuality().totalVideoFrames") > 0


def check_captions(page: Any) -> None:
    """The master's SUBTITLES rendition is selected and its cues are loaded and shown."""
    page.wait_for_function(
        """() => { const v = document.querySelector('.player video');
             return v && Array.from(v.textTracks).some(
               t => t.mode === 'showing' && t.cues && t.cues.length > 0); }""",
        timeout=STEP_MS,
    )


def upload_through_page(screen: Screen, clip_file: Path, title: str) -> str:
    """Picks the file, fills the form, waits for `ready` on the clip page; the clip's id."""
    page = screen.page
    screen.go("/upload")
    page.get_by_label("Upload", exact=True).set_input_files(str(clip_file))
    page.get_by_label("Title").fill(title)
    page.get_by_label("Stage").select_option("contact_to_trial")
    page.get_by_label("Discovery questions").check()
    page.get_by_role("button", name="Start upload").click()
    page.wait_for_url("**/#/clips/*", timeout=STEP_MS)
    page.locator("#clip-status [data-status='ready']").wait_for(timeout=READY_MS)
    return str(page.url.rsplit("/", 1)[1])


def test_page_is_served_with_a_strict_policy_and_versioned_assets(server: LiveServer) -> None:
    r = httpx.get(server.base_url + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy
    script = next(
        line.split('src="')[1].split('"')[0]
        for line in r.text.splitlines()
        if 'type="module"' in line
    )
    assert script.startswith("/assets/") and "{{" not in script
    js = httpx.get(server.base_url + script, timeout=10)
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "immutable" in js.headers["cache-control"]
    version = script.split("/")[2]
    hls = httpx.get(f"{server.base_url}/assets/{version}/vendor/hls.mjs", timeout=10)
    assert hls.status_code == 200 and "immutable" in hls.headers["cache-control"]
    # Another version's name never serves today's code, and nothing outside assets/ leaks.
    stale = httpx.get(server.base_url + script.replace(version, "0" * 16), timeout=10)
    assert stale.status_code == 404 and stale.json()["error"]["code"] == "not_found"
    for path in ("%2E%2E%2Fpackage.json", "node_modules/hls.js/package.json", "index.html"):
        assert (
            httpx.get(f"{server.base_url}/assets/{version}/{path}", timeout=10).status_code == 404
        )


def test_rep_uploads_plays_and_gets_feedback_and_a_review(
    server: LiveServer, browser: Any, clip_file: Path
) -> None:
    base = server.base_url
    rep = Screen(browser, base)
    page = rep.page

    # Sign in: a wrong password shows the API's own message.
    page.goto(base + "/")
    rep.shoot("signin")
    page.get_by_label("Email").fill("rep@demo.peerpitch.dev")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    alert.filter(has_text="Email or password is wrong.").wait_for()
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")  # the keyboard alone signs in
    page.get_by_text("Remy Rep", exact=True).wait_for()

    # Upload through the page: parts to their signed URLs, then processing to ready.
    rep.go("/upload")
    page.get_by_label("Upload", exact=True).set_input_files(str(clip_file))
    page.get_by_label("Title").fill("Discovery call <with Initech>")
    page.get_by_label("Stage").select_option("contact_to_trial")
    page.get_by_label("Discovery questions").check()
    rep.shoot("upload")
    page.get_by_role("button", name="Start upload").click()
    page.wait_for_url("**/#/clips/*", timeout=STEP_MS)
    clip_id = page.url.rsplit("/", 1)[1]
    page.locator("#clip-status [data-status='ready']").wait_for(timeout=READY_MS)
    assert page.get_by_role("heading", name="Discovery call <with Initech>").is_visible()

    # Playback through hls.js: time advances and frames are decoded.
    play_and_check(page)

    # The speech analysis arrives over the live stream: delivery metrics and captions (a
    # <track> added to the running player), then, after a reload, captions from the master's
    # SUBTITLES rendition through hls.js.
    page.locator(".delivery").get_by_text("Speaking").wait_for(timeout=READY_MS)
    check_captions(page)
    page.reload()
    check_captions(page)
    rep.shoot("clip-delivery")
    video = page.locator(".player video")
    video.evaluate(
        "v => new Promise(r => { v.pause(); v.addEventListener('seeked', r, {once: true});"
        " v.currentTime = 1.2; })"
    )

    # Feedback at the playhead with a skill and a drawn arrow; plain text stays plain.
    body = "Ask why before you demo <b>now</b>"
    page.get_by_label("Comment", exact=True).fill(body)
    page.get_by_label("Skill", exact=True).select_option("discovery_questions")
    page.get_by_role("button", name="Arrow").click()
    overlay = page.locator(".player .overlay")
    overlay.scroll_into_view_if_needed()
    box = overlay.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.up()
    page.get_by_text("1 shape drawn").wait_for()
    page.get_by_role("button", name="Post", exact=True).click()
    marker = page.get_by_role("button", name="Feedback at 0:01 by Remy Rep")
    marker.wait_for()
    thread = page.locator(".thread").first
    assert thread.locator(".body").first.text_content() == body
    assert thread.locator("b").count() == 0
    feedback = httpx.get(
        f"{base}/v1/clips/{clip_id}/feedback",
        headers=api_login(base, "rep@demo.peerpitch.dev"),
        timeout=10,
    ).json()["items"]
    (note,) = feedback
    assert note["timestamp_ms"] in range(1000, 1500)
    assert note["skill"] == "discovery_questions"
    assert [s["type"] for s in note["annotation"]["shapes"]] == ["arrow"]
    # A marker is a button: from the keyboard it seeks there and shows the drawing.
    video.evaluate("v => { v.currentTime = 0; }")
    marker.focus()
    page.keyboard.press("Enter")
    page.locator(".overlay .shape-arrow").wait_for()
    assert abs(video.evaluate("v => v.currentTime") - note["timestamp_ms"] / 1000) < 0.05

    # Ask the coach for a review (people picker).
    page.get_by_label("Reviewer").select_option(label="Cole Coach (Coach)")
    page.get_by_role("button", name="Request review").click()
    page.get_by_text("Review requested.").wait_for()
    rep.shoot("clip")

    # The top performer replies and marks the note helpful.
    top = Screen(browser, base)
    top.sign_in("top@demo.peerpitch.dev")
    top.go(f"/clips/{clip_id}")
    top.page.get_by_label("Reply", exact=True).fill("Try one open question first.")
    top.page.get_by_role("button", name="Send reply").click()
    top.page.locator(".reply").get_by_text("Try one open question first.").wait_for()
    top.page.get_by_role("button", name="Helpful").click()
    top.page.get_by_text("1 found this helpful").wait_for()
    assert top.page.get_by_role("button", name="Helpful").get_attribute("aria-pressed") == "true"
    top.close()

    # The coach completes the review with scores.
    coach = Screen(browser, base)
    coach.sign_in("coach@demo.peerpitch.dev")
    coach.go("/reviews/inbox")
    request = coach.page.locator(".review").filter(has_text="Discovery call <with Initech>")
    request.get_by_label("Discovery questions score").select_option("4")
    request.get_by_label("Demo score").select_option("3")
    request.get_by_label("Summary").fill("Good questions; the demo ran long.")
    coach.shoot("reviews")
    request.get_by_role("button", name="Complete review").click()
    coach.page.get_by_text("Review sent.").wait_for()
    # ...and makes it an exemplar of its stage.
    coach.go(f"/clips/{clip_id}")
    coach.page.get_by_label("Why it is worth watching").fill("Opens with two open questions")
    coach.page.get_by_role("button", name="Mark as exemplar").click()
    coach.page.get_by_text("This clip is an exemplar of its stage.").wait_for()
    coach.close()

    # The rep sees the reply, the score in the skill profile, and the notifications.
    rep.go(f"/clips/{clip_id}")
    page.locator(".reply").get_by_text("Try one open question first.").wait_for()
    rep.go("/profile")
    row = page.locator("tr[data-skill='discovery_questions']").first
    row.locator("td.score").filter(has_text="4.0").wait_for()
    assert row.locator("svg.trend circle").count() >= 1
    rep.shoot("profile")
    rep.go("/reviews/outbox")
    page.get_by_text("Discovery questions: 4 / 5").wait_for()
    rep.go("/prep/contact_to_trial")
    rep.shoot("prep")
    page.locator("#nav-notifications[aria-label*='unread']").wait_for()
    rep.go("/notifications")
    page.get_by_text("Tess Top replied in a thread on").first.wait_for()
    rep.shoot("notifications")
    rep.go("/library/mine")
    page.locator(".clip-card").filter(has_text="Discovery call <with Initech>").wait_for()
    rep.shoot("library")
    rep.go("/library/exemplars")
    page.locator(".clip-card").filter(has_text="Opens with two open questions").wait_for()
    rep.shoot("exemplars")

    # Signing out ends the login: the token is gone from storage, the form is back.
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.evaluate("() => localStorage.getItem('peerpitch.tokens')") is None
    rep.close()


def test_upload_playback_and_captions_with_media_on_s3(
    s3_endpoint: str, browser: Any, clip_file: Path, tmp_path: Path
) -> None:
    """With media in S3 (moto's server over HTTP), the page sends the parts to presigned
    URLs and hls.js follows the segment and caption redirects to the bucket: the policy names
    the endpoint, and the bucket's CORS rule (development: any origin) lets both through."""
    env = {
        **SPEECH_ENV,
        "PEERPITCH_STORAGE": "s3",
        "PEERPITCH_S3_ENDPOINT_URL": s3_endpoint,
        "PEERPITCH_S3_BUCKET": f"web-{uuid.uuid4().hex[:12]}",
        # S3 refuses parts under 5 MiB (start-up checks it): the clip goes as one part.
        "PEERPITCH_UPLOAD_PART_SIZE": str(5 * 1024 * 1024),
    }
    with live_server(tmp_path / "s3", name="pp_web_s3", extra_env=env) as srv:
        policy = httpx.get(srv.base_url + "/", timeout=10).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert set(directives["connect-src"].split()) == {"'self'", srv.base_url, s3_endpoint}
        rep = Screen(browser, srv.base_url)
        from_bucket: list[str] = []
        rep.page.on(
            "response",
            lambda r: (
                from_bucket.append(f"{r.request.method} {r.status}")
                if r.url.startswith(s3_endpoint)
                else None
            ),
        )
        rep.sign_in("rep@demo.peerpitch.dev")
        upload_through_page(rep, clip_file, "Discovery call on S3")
        play_and_check(rep.page)
        rep.page.locator(".delivery").get_by_text("Speaking").wait_for(timeout=READY_MS)
        rep.page.reload()
        check_captions(rep.page)
        assert "PUT 200" in from_bucket and "GET 200" in from_bucket, from_bucket
        rep.close()


@pytest.fixture
def other_origin(server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """The app as `make web-dist` lays it out, on a static server of another origin, with
    its API meta naming the live server (whose development CORS allows loopback origins)."""
    root = tmp_path / "site"
    shutil.copytree(ROOT / "web" / "assets", root / "assets")
    (root / "assets" / "vendor").mkdir()
    shutil.copy(HLS_JS, root / "assets" / "vendor" / "hls.mjs")
    page = (ROOT / "web" / "index.html").read_text().replace("{{ASSETS}}", "assets")
    page = page.replace(
        'name="peerpitch-api" content=""', f'name="peerpitch-api" content="{server.base_url}"'
    )
    (root / "index.html").write_text(page)
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_app_works_from_another_origin(
    server: LiveServer, other_origin: str, browser: Any, clip_file: Path
) -> None:
    """Only the API's URL changes: sign-in, the upload's parts, playback and the live
    stream all cross origins (CORS), and the token never appears in a URL."""
    rep = Screen(browser, other_origin)
    urls: list[str] = []
    rep.page.on("request", lambda r: urls.append(r.url))
    rep.sign_in("rep@demo.peerpitch.dev")
    upload_through_page(rep, clip_file, "Pitched from another origin")
    play_and_check(rep.page)
    crossed = [u for u in urls if u.startswith(server.base_url)]
    assert any("/v1/uploads/" in u and "/parts/" in u for u in crossed)
    assert any("/v1/events/stream" in u for u in crossed)
    assert any("/v1/play/" in u for u in crossed)
    token = rep.page.evaluate("() => JSON.parse(localStorage.getItem('peerpitch.tokens'))")
    assert not [u for u in urls if token["access_token"] in u or token["refresh_token"] in u]
    rep.close()


def test_an_interrupted_upload_resumes_after_a_reload(
    server: LiveServer, browser: Any, clip_file: Path
) -> None:
    """Part 3 fails to send; after a reload, picking the same file again sends only the parts
    the server does not have, on the same clip, and the clip is processed."""
    rep = Screen(browser, server.base_url)
    page = rep.page
    rep.sign_in("rep@demo.peerpitch.dev")
    rep.go("/upload")
    page.route(lambda url: "/v1/uploads/" in url and "/parts/3?" in url, lambda r: r.abort())
    page.get_by_label("Upload", exact=True).set_input_files(str(clip_file))
    page.get_by_label("Title").fill("Interrupted pitch")
    page.get_by_role("button", name="Start upload").click()
    page.get_by_role("alert").filter(has_text="Part 3 could not be sent").wait_for()
    page.unroute_all()
    (entry,) = page.evaluate("() => Object.values(JSON.parse(localStorage['peerpitch.uploads']))")

    # The reload ends the parts still in flight; what the server holds then is what the
    # page must not send again.
    page.reload()
    page.locator(".resume").get_by_text("Interrupted pitch").wait_for()
    headers = api_login(server.base_url, "rep@demo.peerpitch.dev")
    state = httpx.get(
        f"{server.base_url}/v1/uploads/{entry['upload_id']}", headers=headers, timeout=10
    ).json()
    stored = {p["number"] for p in state["uploaded_parts"]}
    assert state["part_count"] > 3 and 3 not in stored
    sent: list[int] = []
    page.on(
        "request",
        lambda r: (
            sent.append(int(r.url.split("/parts/")[1].split("?")[0]))
            if r.method == "PUT" and "/parts/" in r.url
            else None
        ),
    )
    page.get_by_label("Upload", exact=True).set_input_files(str(clip_file))
    page.get_by_role("button", name="Start upload").click()
    page.wait_for_url(f"**/#/clips/{entry['clip_id']}", timeout=STEP_MS)
    page.locator("#clip-status [data-status='ready']").wait_for(timeout=READY_MS)
    assert 3 in sent and not stored & set(sent), (stored, sent)
    assert sorted(stored | set(sent)) == list(range(1, state["part_count"] + 1))
    assert page.evaluate("() => localStorage['peerpitch.uploads']") == "{}"
    rep.close()
