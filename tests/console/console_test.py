"""The triage console end to end in a real browser (run by scripts/console-test).

Starts `portolan run` on a copy of config/portolan.example.toml whose capture is the sample plus hostile
sessions and whose inventory names a device with a script payload (tests/console/xss_capture.py), creates
admin, analyst and viewer tokens with `portolan token create`, and drives Debian's chromium through
Playwright: sign-in and cookie flags, the inbox against the API's own alert list, a finding's reasons,
acknowledge / escalate / comment / undo (audited), a viewer that can change nothing, CSRF and origin
refusals, the CSP header, payloads (SNI, HTTP Host, User-Agent, MDM device name) rendered as inert text, a
finding's links to its flow records, the health charts updating (flow-table use against capacity), a learning
rejection and approval and an acknowledgement that hold across a daemon restart (the approval changes the next
verdicts), an exception's retro-impact,
and no token in any URL or log. Screenshots of every screen go to $CONSOLE_SHOTS_DIR.
"""

import json
import os
import re
import signal
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright

ROOT = os.environ["ROOT"]
BIN = os.environ["PORTOLAN_BIN"]
CHROMIUM = os.environ["CHROMIUM"]
SHOTS = os.environ["CONSOLE_SHOTS_DIR"]
sys.path.insert(0, os.path.join(ROOT, "tests", "console"))
import xss_capture as X  # noqa: E402

WORK = tempfile.mkdtemp(prefix="console-test.", dir=os.path.join(ROOT, "target", "console-test"))
DATA = os.path.join(WORK, "data")
CONFIG = os.path.join(WORK, "portolan.toml")
CAPTURE = os.path.join(WORK, "hostile.pcap")
INVENTORY = os.path.join(WORK, "inventory.json")
LOGS = []
DAEMONS = []


def say(msg):
    print(f"console-test: {msg}", file=sys.stderr, flush=True)


def frames_in(path):
    data = open(path, "rb").read()[24:]
    n = off = 0
    while off + 16 <= len(data):
        n += 1
        off += 16 + struct.unpack("<I", data[off + 8 : off + 12])[0]
    return n


def write_config():
    X.write_capture(os.path.join(ROOT, "samples/egress-sample.pcap"), CAPTURE)
    udid = X.write_inventory(os.path.join(ROOT, "samples/inventory.json"), INVENTORY)
    text = open(os.path.join(ROOT, "config/portolan.example.toml")).read()
    text = text.replace("rx_pcap=../samples/egress-sample.pcap", f"rx_pcap={CAPTURE}")
    text = text.replace("../samples/", f"{ROOT}/samples/")
    text = text.replace(
        "# [inputs]              #",
        f'[inputs]\ninventory = ["{INVENTORY}"]\ndevice_states = "{ROOT}/samples/device-states.jsonl"\n#',
        1,
    )
    open(CONFIG, "w").write(text)
    return udid


def token(role, label):
    out = subprocess.run(
        [BIN, "token", "create", "--config", CONFIG, "--data-dir", DATA, "--role", role, "--label", label],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


class Daemon:
    def __init__(self):
        log = os.path.join(WORK, f"daemon-{len(LOGS)}.log")
        LOGS.append(log)
        self.log = log
        env = dict(os.environ, RUST_LOG="info")
        self.proc = subprocess.Popen(
            [BIN, "run", "--config", CONFIG, "--data-dir", DATA, "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env,
        )
        DAEMONS.append(self)
        deadline = time.time() + 90
        self.url = None
        while time.time() < deadline and not self.url:
            m = re.search(r"admin API listening on (https://[0-9.:]+)", open(log).read())
            if m:
                self.url = m.group(1)
            elif self.proc.poll() is not None:
                raise SystemExit(f"portolan run exited:\n{open(log).read()}")
            else:
                time.sleep(0.1)
        assert self.url, f"no listening line within 90 s:\n{open(log).read()}"
        self.ctx = ssl.create_default_context(cafile=os.path.join(DATA, "tls/api-cert.pem"))

    def call(self, method, path, tok=None, body=None, headers=None):
        req = urllib.request.Request(self.url + path, method=method)
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data=data, context=self.ctx, timeout=30) as r:
                raw = r.read()
                return r.status, dict(r.headers), (json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode())
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, dict(e.headers), (json.loads(raw) if raw[:1] == b"{" else raw.decode())

    def wait_for_replay(self, tok, frames):
        deadline = time.time() + 90
        while time.time() < deadline:
            _, _, stats = self.call("GET", "/api/v1/stats", tok)
            workers = stats.get("workers") or []
            if workers and sum(w.get("packets", 0) for w in workers) == frames and "dataplane finished" in open(self.log).read():
                time.sleep(0.5)
                return stats
            time.sleep(0.2)
        raise AssertionError(f"replay did not finish:\n{open(self.log).read()[-3000:]}")

    def metric(self, tok, name):
        _, _, text = self.call("GET", "/metrics", tok)
        m = re.search(rf"^{name}(?:{{}})? ([0-9.e+]+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_js(page, expr, timeout=15):
    """Polls a JavaScript expression until it is truthy (Playwright's wait_for_function evaluates strings
    in the page, which the console's CSP forbids)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.evaluate(expr):
            return
        time.sleep(0.1)
    raise AssertionError(f"still false after {timeout} s: {expr}")


def shot(page, name):
    """A full-page screenshot of the screen, without a passing toast over it."""
    page.evaluate("document.getElementById('toast').className = ''")
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def all_alerts(d, tok):
    _, _, body = d.call("GET", "/api/v1/alerts?limit=1000", tok)
    return body["alerts"]


def main():
    os.makedirs(SHOTS, exist_ok=True)
    xss_udid = write_config()
    frames = frames_in(CAPTURE)
    admin = token("admin", "console-admin")
    analyst = token("analyst", "console-analyst")
    viewer = token("viewer", "console-viewer")
    secrets = [admin, analyst, viewer]
    cookies_seen = []
    urls_seen = []
    script_dialogs = []
    csp_violations = []

    d = Daemon()
    d.wait_for_replay(admin, frames)
    approved_1 = d.metric(admin, "portolan_control_approved_flows_total")
    alerts = all_alerts(d, admin)
    assert alerts, "the capture raised no alert"
    say(f"daemon at {d.url}: {len(alerts)} alerts")

    # Headers of the page itself.
    status, headers, _ = d.call("GET", "/ui/")
    h = {k.lower(): v for k, v in headers.items()}
    assert status == 200, status
    csp = h.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, csp
    assert h.get("x-frame-options") == "DENY" and h.get("x-content-type-options") == "nosniff", h
    status, _, _ = d.call("GET", "/", None)
    # Unauthenticated API calls are still refused.
    assert d.call("GET", "/api/v1/alerts")[0] == 401

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            # Playwright gives the browser a fresh, temporary --user-data-dir.
        )

        def new_page():
            ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            page.on("request", lambda r: urls_seen.append(r.url))
            page.on("console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None)
            answers = []

            def on_dialog(dlg):
                if dlg.type == "prompt":
                    dlg.accept(answers.pop(0) if answers else dlg.default_value)
                else:
                    script_dialogs.append(dlg.message)
                    dlg.dismiss()

            page.on("dialog", on_dialog)
            page.answers = answers
            return ctx, page

        def sign_in(page, tok):
            before = len(urls_seen)
            page.goto(d.url + "/ui/")
            page.wait_for_selector("#token")
            # The first page is light: the page, its stylesheet and its own modules; no library yet.
            first = [u.split("/ui/", 1)[-1] for u in urls_seen[before:]]
            assert not any("vendor/" in u for u in first), first
            page.fill("#token", tok)
            page.click("#sign-in button[type=submit]")
            page.wait_for_selector("#inbox tbody tr[data-key]")

        # ------------------------------------------------------------ analyst: sign-in and inbox
        ctx, page = new_page()
        sign_in(page, analyst)
        cookie = next(c for c in ctx.cookies() if c["name"] == "__Host-portolan_session")
        assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie
        assert cookie["path"] == "/", cookie
        cookies_seen.append(cookie["value"])
        assert page.evaluate("document.cookie") == "", "the session cookie is readable by script"
        open_alerts = [a for a in alerts if a["status"] == "open"]
        summary = page.text_content("#inbox-summary")
        assert f"{len(open_alerts)} alerts" in summary, (summary, len(open_alerts))
        keys = page.eval_on_selector_all("#inbox tbody tr[data-key]", "rs => rs.map(r => r.dataset.key)")
        for a in open_alerts:
            dev = a["device_udid"] or f"ip:{a['src_ip']}"
            key = f"{dev}|{a['bundle_id'] or '-'}|{a['app_proto']}|{a['transport']}|{a['dest_port']}"
            assert key in keys, (key, keys)
        # The ground truth's non-standard-port sessions of managed devices are in the inbox.
        truth = [l.rstrip("\n").split("\t") for l in open(os.path.join(ROOT, "samples/ground-truth.tsv"))][1:]
        flagged = {(t[8], t[5], t[3]) for t in truth if t[7] == "1" and t[8]}
        shown = {(k.split("|")[0], k.split("|")[2], k.split("|")[4]) for k in keys}
        assert flagged & shown, (flagged, shown)
        shot(page, "inbox")

        # Sorting (table-core): by device name ascending, by alert count descending, back to score.
        _, _, api_groups = d.call("GET", "/api/v1/alert-groups?status=open&limit=1000", admin)
        groups = api_groups["groups"]
        shown_keys = lambda: page.eval_on_selector_all("#inbox tbody tr[data-key]", "rs => rs.map(r => r.dataset.key)")
        page.click("#inbox th[data-sort=device]")
        wait_js(page, "document.querySelector('#inbox th[data-sort=device]').getAttribute('aria-sort') === 'ascending'")
        by_device = [g["key"] for g in sorted(groups, key=lambda g: g["device_name"] or g["device_udid"] or g["src_ip"])]
        assert shown_keys() == by_device, (shown_keys(), by_device)
        page.click("#inbox th[data-sort=count]")
        wait_js(page, "document.querySelector('#inbox th[data-sort=count]').getAttribute('aria-sort') === 'descending'")
        by_count = [g["key"] for g in sorted(groups, key=lambda g: -g["count"])]
        assert shown_keys() == by_count, (shown_keys(), by_count)
        page.click("#inbox th[data-sort=score]")
        wait_js(page, "document.querySelector('#inbox th[data-sort=score]').getAttribute('aria-sort') === 'descending'")
        by_score = [g["key"] for g in sorted(groups, key=lambda g: -g["score"])]
        assert shown_keys() == by_score, (shown_keys(), by_score)
        # Filter by severity: the server's filter, shown as the API gives it.
        _, _, high = d.call("GET", "/api/v1/alert-groups?status=open&severity=high&limit=1000", admin)
        assert 0 < len(high["groups"]) < len(groups), high
        page.select_option("#f-severity", "high")
        wait_js(page, f"document.querySelectorAll('#inbox tbody tr[data-key]').length === {len(high['groups'])}")
        assert sorted(shown_keys()) == sorted(g["key"] for g in high["groups"])
        page.select_option("#f-severity", "")
        wait_js(page, f"document.querySelectorAll('#inbox tbody tr[data-key]').length === {len(groups)}")

        # Search, then keyboard: j moves, Enter opens the finding.
        page.fill("#f-q", "evil.example")
        wait_js(page, "document.querySelectorAll('#inbox tbody tr[data-key]').length === 2")
        page.fill("#f-q", "")
        wait_js(page, f"document.querySelectorAll('#inbox tbody tr[data-key]').length === {len(keys)}")
        page.click("#inbox tbody tr[data-key]")
        page.keyboard.press("j")
        second = page.get_attribute("#inbox tbody tr.selected", "data-alert")
        page.keyboard.press("Enter")
        page.wait_for_selector("#reasons tbody tr")
        assert page.url.endswith(f"#/alert/{second}"), page.url

        # ------------------------------------------------------------ finding: reasons and weights
        _, _, api_alert = d.call("GET", f"/api/v1/alerts/{second}", admin)
        shown_reasons = page.eval_on_selector_all("#reasons tbody tr", "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
        assert len(shown_reasons) == len(api_alert["reasons"]), (shown_reasons, api_alert["reasons"])
        for (text, weight), reason in zip(shown_reasons, api_alert["reasons"]):
            assert reason.startswith(text), (text, reason)
            if weight:
                assert f"({weight})" in reason, (weight, reason)
        assert any(w for _, w in shown_reasons), shown_reasons
        shot(page, "finding")

        # Acknowledge through the button; escalate then undo with the keyboard; comment.
        page.answers.append("looked at it in the console")
        page.click("button[data-act=acknowledge]")
        wait_js(page, "document.getElementById('alert-status')?.textContent === 'acknowledged'")
        page.answers.append("needs the mobile team")
        page.keyboard.press("e")
        page.wait_for_selector("#alert-escalated")
        page.keyboard.press("u")
        wait_js(page, "!document.getElementById('alert-escalated') && document.getElementById('alert-status')")
        page.answers.append("<b>bold</b><img src=x onerror=alert(16)>")
        page.keyboard.press("c")
        page.wait_for_selector("#comments .comment")
        assert page.text_content("#comments .comment") == "<b>bold</b><img src=x onerror=alert(16)>"
        _, _, acked = d.call("GET", f"/api/v1/alerts/{second}", admin)
        assert acked["status"] == "acknowledged" and acked["escalated"] is None, acked
        assert acked["acknowledged"]["by"].endswith("(console-analyst)"), acked
        _, _, audit = d.call("GET", f"/api/v1/audit?target={second}&limit=1000", admin)
        actions = [e["action"] for e in audit["entries"] if e["target"] == str(second)]
        assert actions == ["alert_acknowledged", "alert_escalated", "alert_deescalated", "alert_commented"], actions

        # CSRF: a state-changing request without the session's token is refused, with it accepted.
        status = page.evaluate(
            """async (id) => (await fetch(`/api/v1/alerts/${id}/escalate`, {method: 'POST',
                 headers: {'Content-Type': 'application/json'}, body: JSON.stringify({note: 'forged'})})).status""",
            second,
        )
        assert status == 403, status
        # From another origin (the cookie replayed by a non-browser client with a foreign Origin).
        csrf = page.evaluate("async () => (await (await fetch('/ui/session')).json()).csrf_token")
        hdr = {"Cookie": f"__Host-portolan_session={cookie['value']}", "X-CSRF-Token": csrf, "Origin": "https://evil.example"}
        assert d.call("POST", f"/api/v1/alerts/{second}/escalate", body={"note": "x"}, headers=hdr)[0] == 403
        hdr["Origin"] = d.url
        assert d.call("POST", f"/api/v1/alerts/{second}/escalate", body={"note": "same origin"}, headers=hdr)[0] == 200
        assert d.call("POST", f"/api/v1/alerts/{second}/undo", body={"action": "escalate", "note": "test"}, headers=hdr)[0] == 200

        # Archive (#) a whole group and undo it (u): open again (archiving an open alert acknowledges it too,
        # so the undo takes both back); comment (c) and undo: each act audited per alert.
        page.goto(d.url + "/ui/#/inbox")
        page.wait_for_selector("#inbox tbody tr[data-key]")
        _, _, api_groups = d.call("GET", "/api/v1/alert-groups?status=open&limit=1000", admin)
        group = next(g for g in api_groups["groups"] if g["count"] >= 2 and int(second) not in g["alert_ids"])
        row = f"#inbox tbody tr[data-key='{group['key']}']"
        page.click(row)
        page.answers.append("archived by the console test")
        page.keyboard.press("#")
        page.wait_for_selector(row, state="detached")
        for i in group["alert_ids"]:
            assert d.call("GET", f"/api/v1/alerts/{i}", admin)[2]["status"] == "closed"
        page.keyboard.press("u")
        page.wait_for_selector(row)
        page.click(row)
        page.answers.append("a comment to take back")
        page.keyboard.press("c")
        wait_js(page, "document.getElementById('toast')?.textContent.startsWith('comment')")
        page.keyboard.press("u")
        wait_js(page, "document.getElementById('toast')?.textContent.startsWith('undid comment')")
        for i in group["alert_ids"]:
            _, _, a = d.call("GET", f"/api/v1/alerts/{i}", admin)
            assert a["status"] == "open" and a["comments"] == [], a
            _, _, audit = d.call("GET", f"/api/v1/audit?target={i}&limit=1000", admin)
            acts = [e["action"] for e in audit["entries"] if e["target"] == str(i)]
            assert acts == ["alert_closed", "alert_reopened", "alert_unacknowledged", "alert_commented", "alert_comment_retracted"], (i, acts)

        # ------------------------------------------------------------ hostile fields rendered inert
        page.goto(d.url + "/ui/#/inbox")
        page.fill("#f-q", "evil.example")
        wait_js(page, "document.querySelectorAll('#inbox tbody tr[data-key]').length === 2")
        names = page.eval_on_selector_all("#inbox .device-name", "es => es.map(e => e.textContent)")
        assert X.NAME_PAYLOAD in names, names
        servers = page.eval_on_selector_all("#inbox .server-name", "es => es.map(e => e.textContent)")
        assert X.SNI_PAYLOAD in servers and X.HOST_PAYLOAD in servers, servers
        hostile = page.get_attribute("#inbox tbody tr[data-key]", "data-alert")
        # Each hostile finding's evidence shows the payloads as text: SNI; HTTP Host and User-Agent.
        hostile_alerts = {a["dest_port"]: a["id"] for a in all_alerts(d, admin) if a["device_udid"] == xss_udid}
        assert 8088 in hostile_alerts and 4444 in hostile_alerts, hostile_alerts
        page.goto(d.url + f"/ui/#/alert/{hostile_alerts[8088]}")
        page.wait_for_selector("#reasons")
        wait_js(page, f"document.querySelector('dd[data-k=sni]')?.textContent === {json.dumps(X.SNI_PAYLOAD)}")
        assert page.text_content("dd[data-k=sni]") == X.SNI_PAYLOAD
        # The evidence has the ClientHello's JA4 and the classifier's indicators as the dataplane recorded
        # them, and the attribution's method and confidence.
        _, _, tls_alert = d.call("GET", f"/api/v1/alerts/{hostile_alerts[8088]}", admin)
        ev_flow, ev_dev = tls_alert["evidence"]["flow"], tls_alert["evidence"]["device"]
        ja4 = ev_flow.get("tls", {}).get("ja4")
        assert ja4 and re.fullmatch(r"t1[0-3]d\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}", ja4), ev_flow
        assert page.text_content("dd[data-k=ja4]") == ja4
        assert ev_flow["indicators"], ev_flow
        assert page.text_content("dd[data-k=indicators]") == ", ".join(ev_flow["indicators"])
        assert page.text_content("dd[data-k=device-method]") == ev_dev["attribution"] == "inventory_ip"
        assert page.text_content("dd[data-k=device-confidence]") == f"{ev_dev['confidence']:.2f}"
        page.goto(d.url + f"/ui/#/alert/{hostile_alerts[4444]}")
        wait_js(page, f"document.querySelector('dd[data-k=user-agent]')?.textContent === {json.dumps(X.UA_PAYLOAD)}")
        assert page.text_content("dd[data-k=http-host]") == X.HOST_PAYLOAD
        assert page.text_content("dd[data-k=user-agent]") == X.UA_PAYLOAD
        # The finding links to the flow records of its sessions; the flow record shows every field.
        sessions = page.eval_on_selector_all("#sessions a.flow-link", "as => as.map(a => a.getAttribute('href'))")
        assert f"#/flow/{hostile_alerts[4444]}" in sessions, sessions
        page.click("dd[data-k=flow] a.flow-link")
        page.wait_for_selector("#flow-record")
        assert page.url.endswith(f"#/flow/{hostile_alerts[4444]}"), page.url
        record = dict(page.eval_on_selector_all("#flow-record tr", "rs => rs.map(r => [r.dataset.k, r.cells[1].textContent])"))
        assert record.get("http.http_user_agent") == X.UA_PAYLOAD, record
        assert record.get("http_host") == X.HOST_PAYLOAD, record
        assert record.get("dest_port") == "4444" and "community_id" in record, record
        shot(page, "flow")
        page.goto(d.url + f"/ui/#/alert/{hostile}")
        page.wait_for_selector("#reasons")
        # The device list (table-core): sorted by name, searchable, paged.
        page.goto(d.url + "/ui/#/devices")
        page.wait_for_selector("#devices tbody tr[data-udid]")
        _, _, api_devices = d.call("GET", "/api/v1/devices?limit=1000", admin)
        udids = page.eval_on_selector_all("#devices tbody tr[data-udid]", "rs => rs.map(r => r.dataset.udid)")
        want = [x["udid"] for x in sorted(api_devices["devices"], key=lambda x: x["name"] or x["udid"])][:50]
        assert udids == want, (udids, want)
        page.fill("#devices-q", "onerror")
        wait_js(page, "document.querySelectorAll('#devices tbody tr[data-udid]').length === 1")
        assert page.get_attribute("#devices tbody tr[data-udid]", "data-udid") == xss_udid
        assert page.text_content("#devices .device-name") == X.NAME_PAYLOAD
        page.fill("#devices-q", "")
        wait_js(page, f"document.querySelectorAll('#devices tbody tr[data-udid]').length === {len(want)}")
        shot(page, "devices")
        page.goto(d.url + f"/ui/#/device/{xss_udid}")
        page.wait_for_selector("#device-title")
        assert page.text_content("#device-title") == X.NAME_PAYLOAD
        # The timeline: the device's alerted sessions and the state changes its MDM reported.
        _, _, detail = d.call("GET", f"/api/v1/devices/{xss_udid}", admin)
        lock, apps, changes = None, {}, 0
        for x in detail["states"]:
            app = x.get("bundle_id") or "(device)"
            changed = (x.get("lock_state") and x["lock_state"] != lock) or (x.get("app_state") and x["app_state"] != apps.get(app))
            lock = x.get("lock_state") or lock
            if x.get("app_state"):
                apps[app] = x["app_state"]
            changes += bool(changed)
        assert changes > 0, detail["states"]
        device_alerts = [a for a in all_alerts(d, admin) if a["device_udid"] == xss_udid]
        assert page.eval_on_selector_all("#timeline tr[data-kind=state]", "rs => rs.length") == changes
        assert page.eval_on_selector_all("#timeline tr[data-kind=session]", "rs => rs.length") == len(device_alerts)
        times = page.eval_on_selector_all("#timeline tbody tr", "rs => rs.map(r => r.cells[0].textContent)")
        assert times == sorted(times, reverse=True), times
        assert "object HTMLElement" not in page.text_content("#view")
        assert page.eval_on_selector_all("dl.kv dt", "ds => ds.length") >= 10
        shot(page, "device")
        assert page.evaluate("document.querySelectorAll('img[src=x], main script, #view b').length") == 0
        assert not script_dialogs, script_dialogs
        page.goto(d.url + "/ui/#/health")
        page.wait_for_selector(".chart canvas")
        # The charts update: a second tick of the 2 s timer.
        wait_js(page, "Number(document.getElementById('stats-updated')?.dataset.ticks) >= 2", timeout=10)
        assert "packets" in page.text_content("#stats-updated")
        assert page.eval_on_selector_all("#drops tr", "rs => rs.length") > 0
        charts = page.eval_on_selector_all(".chart[data-chart]", "cs => cs.map(c => c.dataset.chart)")
        assert sorted(charts) == ["bps", "drops", "flows", "inventory", "pps", "ring"], charts
        assert page.eval_on_selector_all(".chart canvas", "cs => cs.length") == 6
        _, _, stats = d.call("GET", "/api/v1/stats", admin)
        capacity = sum(w["flows_capacity"] for w in stats["workers"])
        assert capacity > 0, stats["workers"]
        assert page.get_attribute("#flow-table-use", "data-capacity") == str(capacity)
        assert f"of {capacity} flows in use" in page.text_content("#flow-table-use")
        assert page.text_content("#imports dd[data-k=devices]") == str(d.call("GET", "/api/v1/devices?limit=1", admin)[2]["total"])
        shot(page, "health")
        page.click("#sign-out")
        page.wait_for_selector("#token")
        assert d.call("GET", "/api/v1/alerts", headers={"Cookie": f"__Host-portolan_session={cookie['value']}"})[0] == 401
        ctx.close()

        # ------------------------------------------------------------ viewer: sees, cannot change
        ctx, page = new_page()
        sign_in(page, viewer)
        assert page.query_selector_all("button[data-act]") == []
        page.click("#inbox tbody tr[data-key]")
        page.keyboard.press("a")
        page.wait_for_timeout(300)
        before = all_alerts(d, admin)
        assert sum(a["status"] == "acknowledged" for a in before) == 1, [a["status"] for a in before]
        csrf = page.evaluate("async () => (await (await fetch('/ui/session')).json()).csrf_token")
        status = page.evaluate(
            """async ([id, csrf]) => (await fetch(`/api/v1/alerts/${id}/ack`, {method: 'POST',
                 headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify({note: 'viewer'})})).status""",
            [hostile, csrf],
        )
        assert status == 403, status
        page.goto(d.url + "/ui/#/baselines")
        page.wait_for_selector("#exception-form")
        assert page.query_selector_all("button.approve, button.reject, #save-exception") == []
        ctx.close()

        # ------------------------------------------------------------ admin: approve a proposal, exception impact
        ctx, page = new_page()
        sign_in(page, admin)
        cookies_seen.append(next(c["value"] for c in ctx.cookies() if c["name"] == "__Host-portolan_session"))
        page.goto(d.url + "/ui/#/baselines")
        page.wait_for_selector("#proposals tbody tr button.approve")
        # Reject the hostile TLS pairing: stored, audited and listed as rejected.
        rej = page.query_selector("#proposals tbody tr[data-proto=tls][data-port='8088']")
        assert rej, page.eval_on_selector_all("#proposals tbody tr", "rs => rs.map(r => r.dataset.proto + '/' + r.dataset.port)")
        rej_role = rej.get_attribute("data-role")
        page.answers.append("an unknown relay; not part of any baseline")
        rej.query_selector("button.reject").click()
        page.wait_for_selector("#rejected tbody tr[data-proto=tls][data-port='8088']")
        assert not page.query_selector("#proposals tbody tr[data-proto=tls][data-port='8088']")
        assert page.text_content("#rejected tbody tr[data-port='8088'] td.reason") == "an unknown relay; not part of any baseline"
        _, _, audit = d.call("GET", "/api/v1/audit?action=proposal_rejected", admin)
        assert [e["target"] for e in audit["entries"]] == [rej_role], audit
        row = page.query_selector("#proposals tbody tr")
        role, proto, port = row.get_attribute("data-role"), row.get_attribute("data-proto"), row.get_attribute("data-port")
        page.answers.append("seen every day; approved in the console test")
        row.query_selector("button.approve").click()
        wait_js(page, 
            f"!document.querySelector('#proposals tr[data-role=\"{role}\"][data-proto=\"{proto}\"][data-port=\"{port}\"]')"
        )
        _, _, audit = d.call("GET", "/api/v1/audit?action=baseline_approved", admin)
        assert any(e["target"] == role for e in audit["entries"]), audit
        # An exception for the hostile HTTP sessions: the retro-impact before saving.
        http_alerts = [a for a in all_alerts(d, admin) if a["dest_port"] == 4444 and a["device_udid"] == xss_udid]
        assert http_alerts, "the hostile HTTP sessions raised no alert"
        page.fill("input[name=id]", "console-test-relay")
        page.select_option("select[name=kind]", "relay")
        page.fill("input[name=owner]", "netops")
        page.fill("input[name=reason]", "lab relay on 4444")
        page.fill("input[name=devices]", xss_udid)
        page.fill("input[name=ports]", "4444")
        page.fill("input[name=app_protos]", "http")
        assert page.is_disabled("#save-exception")
        page.click("#check-impact")
        page.wait_for_selector("#retro-impact[data-count]")
        count = int(page.get_attribute("#retro-impact", "data-count"))
        assert count == len(http_alerts), (count, len(http_alerts))
        assert f"would have suppressed {count} of" in page.text_content("#retro-impact")
        shot(page, "baselines")
        page.click("#save-exception")
        page.wait_for_selector("#exceptions tbody tr[data-id=console-test-relay]")
        assert page.text_content("#exceptions tr[data-id=console-test-relay] td:nth-child(3)") == "netops"
        ctx.close()
        last_id = max(a["id"] for a in all_alerts(d, admin))

        # ------------------------------------------------------------ restart: acknowledgement kept, verdicts changed
        d.stop()
        d = Daemon()
        d.wait_for_replay(admin, frames)
        approved_2 = d.metric(admin, "portolan_control_approved_flows_total")
        assert approved_2 > approved_1, (approved_1, approved_2)
        new = [a for a in all_alerts(d, admin) if a["id"] > last_id]
        assert not any(a["role"] == role and a["app_proto"] == proto and str(a["dest_port"]) == port for a in new), new
        assert not any(a["dest_port"] == 4444 and a["device_udid"] == xss_udid for a in new), new
        # The rejection is stored: still listed as rejected after the restart.
        _, _, props = d.call("GET", "/api/v1/learning/proposals?since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z", admin)
        kept = [x for p in props["proposals"] if p["role"] == rej_role for x in p["pairings"] if x["port"] == 8088 and x["rejected"]]
        assert kept and not kept[0]["proposed"], props
        ctx, page = new_page()
        sign_in(page, analyst)
        page.goto(d.url + f"/ui/#/alert/{second}")
        wait_js(page, "document.getElementById('alert-status')?.textContent === 'acknowledged'")
        ctx.close()
        browser.close()
    d.stop()

    # ------------------------------------------------------------ no token or session id in URLs or logs
    logs = "".join(open(l).read() for l in LOGS)
    for s in secrets + cookies_seen:
        assert s not in logs, "a token or session id is in the daemon log"
        assert not any(s in u for u in urls_seen), "a token or session id is in a URL"
    assert "console sign-in" in logs
    assert not script_dialogs, script_dialogs
    assert not csp_violations, csp_violations
    say(f"passed ({len(urls_seen)} requests; screenshots in {SHOTS})")


if __name__ == "__main__":
    try:
        main()
    finally:
        for daemon in DAEMONS:
            if daemon.proc.poll() is None:
                daemon.stop()
