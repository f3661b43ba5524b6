"""The dashboard in a real headless browser (Debian's chromium + chromedriver, selenium).

A user signs in, sees a node appear when its edge sink starts sending, sees counters and
the chart fill, watches events arrive in the live feed, filters them, searches plates and
faces, and registers a node. Screenshots of every screen go to the test's tmp folder
(or to $OKO_TEST_SCREENSHOTS when set) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SAMPLE_VIDEO
from oko.core.events import Event
from oko.sinks import create_sink
from server_helpers import ServerProcess, oko_cli, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="chromium and chromium-driver are not installed"),
]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1000", "--lang=en-GB"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return data.tobytes()


def plate_image(text: str) -> bytes:
    img = np.full((60, 200, 3), 235, np.uint8)
    cv2.rectangle(img, (3, 3), (196, 56), (30, 30, 30), 2)
    cv2.putText(img, text, (12, 42), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (20, 20, 20), 3)
    return jpeg(img)


def people_crops() -> list[bytes]:
    """The three pedestrians of the bundled video's first frame, as track snapshots."""
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    ok, frame = cap.read()
    cap.release()
    assert ok
    boxes = [(235, 205, 305, 320), (480, 145, 550, 240), (620, 228, 700, 330)]
    return [jpeg(frame[y1:y2, x1:x2]) for x1, y1, x2, y2 in boxes]


def text(driver, css: str) -> str:
    """The text of an element that live updates may replace at any moment ("" if absent)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(20):
        try:
            return driver.find_element(By.CSS_SELECTOR, css).text
        except NoSuchElementException:
            return ""
        except StaleElementReferenceException:
            time.sleep(0.05)
    return ""


class Shots:
    def __init__(self, driver, folder: Path) -> None:
        self.driver = driver
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> None:
        time.sleep(0.3)  # let the last fetch paint
        self.driver.save_screenshot(str(self.folder / f"{name}.png"))


def test_sign_in_watch_a_node_and_its_events_filter_and_search(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    db = f"sqlite:///{tmp_path / 'dash.db'}"
    key = oko_cli("add-node", "gate-1", "--db", db).stdout.strip()
    assert oko_cli("add-user", "alice", "--role", "admin", "--password-stdin", "--db", db,
                   stdin="alice-password\n").returncode == 0
    server = ServerProcess(db, tmp_path / "data").start()
    shots = Shots(browser, Path(os.environ.get("OKO_TEST_SCREENSHOTS") or tmp_path / "shots"))
    b = browser
    sink = None
    try:
        # --- sign in (the page asks for it first)
        b.get(server.url + "/")
        assert "/login" in b.current_url
        b.find_element(By.ID, "username").send_keys("alice")
        b.find_element(By.ID, "password").send_keys("wrong-password")
        b.find_element(By.ID, "sign-in").click()
        assert wait_for(lambda: "wrong user name or password" in text(b, "#login-error"), 10)
        shots("01-login-error")
        b.find_element(By.ID, "username").clear()
        b.find_element(By.ID, "username").send_keys("alice")
        b.find_element(By.ID, "password").send_keys("alice-password")
        b.find_element(By.ID, "sign-in").click()
        assert wait_for(lambda: "never seen" in text(b, 'tr[data-node="gate-1"]'), 10)
        assert b.current_url.rstrip("/") == server.url
        shots("02-overview-node-registered")

        # --- the edge node starts: heartbeat + events through the real server sink
        sink = create_sink({"kind": "server", "url": server.url, "api_key": key,
                            "queue": {"path": str(tmp_path / "q.sqlite3")}, "heartbeat_s": 0.5,
                            "batch_size": 50}, node="gate-1")
        now = time.time()
        sink.send(Event("channel_state", "entrance", 0.0, -1,
                        {"from": "starting", "to": "running", "reason": "opened"}))
        sink.send(Event("channel_state", "parking", 0.0, -1,
                        {"from": "running", "to": "reconnecting", "reason": "timeout"}))
        crops = people_crops()
        for i in range(40):
            sink.send(Event("line_crossing", "entrance", i * 0.5, i,
                            {"line": "door", "direction": "in" if i % 4 else "out",
                             "label": "person", "track_id": i},
                            wall_time=now - (40 - i) * 300,
                            snapshot=crops[i % len(crops)] if i % 5 == 0 else None))
        for i in range(6):
            sink.send(Event("zone_enter", "parking", i, i, {"zone": "bay", "label": "car",
                                                             "track_id": 100 + i},
                            wall_time=now - i * 900))
        assert sink.flush(15), sink.stats()

        def node_online() -> bool:
            row = text(b, 'tr[data-node="gate-1"]')
            return "online" in row and "entrance" in row and "reconnecting" in row
        assert wait_for(node_online, 15), text(b, "#nodes")

        def counters_shown() -> bool:
            cards = b.find_elements(By.CSS_SELECTOR, "#counters .counter")
            return len(cards) == 2
        assert wait_for(counters_shown, 15), text(b, "#counters")
        door = '.counter[data-counter="gate-1/entrance/door"]'
        ins = int(text(b, f'{door} [data-direction="in"] b'))
        outs = int(text(b, f'{door} [data-direction="out"] b'))
        local_midnight = b.execute_script("const d=new Date(); d.setHours(0,0,0,0); "
                                          "return d.getTime()/1000;")
        today = [i for i in range(40) if now - (40 - i) * 300 >= local_midnight // 3600 * 3600]
        assert ins + outs == len(today)
        b.refresh()  # the chart loads on page load (then every 30 s)
        assert wait_for(lambda: b.find_elements(By.CSS_SELECTOR, "#chart svg polyline"), 15)
        shots("03-overview-online-counters-chart")

        # --- the live event feed
        b.get(server.url + "/events")
        assert wait_for(lambda: len(b.find_elements(By.CSS_SELECTOR, "#event-rows tr")) >= 48, 10)
        before = len(b.find_elements(By.CSS_SELECTOR, "#event-rows tr"))
        sink.send(Event("plate_read", "parking", 5.0, 50,
                        {"text": "AB 123 C", "text_latin": "AB123C", "format": "eu",
                         "track_id": 7}, snapshot=plate_image("AB 123 C")))
        sink.send(Event("plate_read", "parking", 6.0, 60,
                        {"text": "XY 987 Z", "format": "eu", "track_id": 8},
                        snapshot=plate_image("XY 987 Z")))
        sink.send(Event("face_recognized", "entrance", 7.0, 70,
                        {"person": "Alice Smith", "similarity": 0.74, "track_id": 9},
                        snapshot=crops[1]))
        sink.send(Event("face_unknown", "entrance", 7.5, 75, {"track_id": 10},
                        snapshot=crops[2]))
        assert sink.flush(10)
        assert wait_for(lambda: len(b.find_elements(By.CSS_SELECTOR, "#event-rows tr"))
                        == before + 4, 15)
        first = b.find_element(By.CSS_SELECTOR, "#event-rows tr")
        assert "face unknown" in first.text  # newest on top
        assert b.find_elements(By.CSS_SELECTOR, "#event-rows tr.fresh")
        assert b.find_elements(By.CSS_SELECTOR, "#event-rows td.snap img")
        loaded = b.execute_script(
            "return [...document.querySelectorAll('#event-rows td.snap img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length;")
        assert loaded >= 3  # snapshots load from the server, with the session cookie
        shots("04-events-live")

        # --- filter
        Select(b.find_element(By.ID, "filter-type")).select_by_value("plate_read")
        b.find_element(By.ID, "apply-filters").click()
        assert wait_for(lambda: "type=plate_read" in b.current_url, 10)
        rows = b.find_elements(By.CSS_SELECTOR, "#event-rows tr")
        assert len(rows) == 2 and all("plate read" in r.text for r in rows)
        b.find_element(By.ID, "filter-plate").send_keys("AB12")
        b.find_element(By.ID, "apply-filters").click()
        assert wait_for(lambda: "plate=AB12" in b.current_url, 10)
        rows = b.find_elements(By.CSS_SELECTOR, "#event-rows tr")
        assert len(rows) == 1 and "AB 123 C" in rows[0].text
        shots("05-events-filtered")

        # --- plate and face search
        b.get(server.url + "/search")
        b.find_element(By.ID, "plate-q").send_keys("A8I23C")  # OCR-style confusions
        b.find_element(By.CSS_SELECTOR, "#plate-search button").click()
        assert wait_for(lambda: b.find_elements(By.ID, "plate-results"), 10)
        result = b.find_element(By.ID, "plate-results").text
        assert "AB123C" in result and "look-alike" in result and "XY987Z" not in result
        assert b.find_elements(By.CSS_SELECTOR, "#sightings img")
        shots("06-plate-search")
        b.find_element(By.ID, "person-q").send_keys("ali")
        b.find_element(By.CSS_SELECTOR, "#person-search button").click()
        assert wait_for(lambda: b.find_elements(By.ID, "person-results"), 10)
        assert "alice smith" in b.find_element(By.ID, "person-results").text
        shots("07-face-search")

        # --- admin: register a node, its key is shown once
        b.get(server.url + "/admin")
        b.find_element(By.CSS_SELECTOR, '#add-node input[name="node_id"]').send_keys("gate-2")
        b.find_element(By.CSS_SELECTOR, "#add-node button").click()
        assert wait_for(lambda: b.find_elements(By.ID, "new-key"), 10)
        assert b.find_element(By.ID, "new-key").text.startswith("oko_")
        shots("08-admin-new-node-key")

        expected = ("favicon", "/login - Failed to load resource: the server responded with a "
                               "status of 401")  # the wrong password at the start
        problems = [entry for entry in b.get_log("browser") if entry["level"] == "SEVERE"
                    and not any(e in entry["message"] for e in expected)]
        assert not problems, problems  # no script errors, no CSP violations
    finally:
        if sink is not None:
            sink.close(1.0)
        server.stop()
