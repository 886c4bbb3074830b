#!/usr/bin/python3
"""Drives speedsrv's browser test page in headless Chromium (selenium + chromedriver) and prints what it saw.

    web_page_check.py URL TIMEOUT_SECONDS [SCREENSHOT.png] [--figures CALLS]

Opens URL, waits until body[data-state] is "done" or "error" (at most TIMEOUT_SECONDS), then prints one JSON
object on stdout: {"state", "charts", "error" (the page's visible message), "result" (the text of #result),
"figures"}. CALLS is a JSON list of calls of the page's figure functions (window.speedtestFigures), each
[NAME, ARG...]; "figures" holds what each returned, in order (null without --figures).
Exit 0 when the page reached an end state, 1 when it did not, 77 when selenium or chromedriver is missing
(tests/integration/test_web_page.cpp skips then). With SCREENSHOT, saves the finished page (docs/images/web.png).
"""
import argparse
import json
import shutil
import sys
import time

SKIP = 77


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("timeout", type=float)
    parser.add_argument("screenshot", nargs="?")
    parser.add_argument("--figures", type=json.loads, default=None)
    args = parser.parse_args()
    url, timeout, screenshot = args.url, args.timeout, args.screenshot
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        print("SKIP: python3-selenium is not installed (Debian package python3-selenium)")
        return SKIP
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        print("SKIP: chromedriver is not installed (Debian package chromium-driver)")
        return SKIP
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1000,1500", "--no-proxy-server"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_page_load_timeout(timeout)
        driver.get(url)
        end = time.monotonic() + timeout
        state = None
        while time.monotonic() < end:
            state = driver.execute_script("return document.body.dataset.state")
            if state in ("done", "error"):
                break
            time.sleep(0.1)
        seen = driver.execute_script(
            "return {state: document.body.dataset.state, charts: document.body.dataset.charts || null,"
            " error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,"
            " result: document.getElementById('result').textContent}")
        seen["figures"] = None if args.figures is None else driver.execute_script(
            "const figures = window.speedtestFigures;"
            " return arguments[0].map((call) => figures[call[0]](...call.slice(1)))", args.figures)
        if screenshot:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1000, height + 20)
            driver.save_screenshot(screenshot)
        print(json.dumps(seen))
        return 0 if state in ("done", "error") else 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
