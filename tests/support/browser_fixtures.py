"""Headless Chromium for the console's browser tests: Debian's ``chromium`` driven by Selenium
through Debian's ``chromedriver`` (hack/install-browser.sh installs both; Playwright's own browser
download is not used). Each test gets a fresh profile directory and nothing from the network:
no background networking, component updates, sync or first-run pages.

* ``browser`` → a :class:`Browser`: ``.open(url)``, ``.find(css)``, ``.wait_text(css, text)``,
  ``.click(css)``, ``.fill(css, text)``, ``.accept_confirm()``, ``.shot(name)`` (a PNG under
  ``.artifacts/console/screenshots``; with ``TOKENPOOL_UPDATE_DOC_SCREENSHOTS=1`` also under
  docs/images/console, where docs/console.md shows them), ``.dark(on)``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.artifacts import REPO, artifact_dir

CHROMIUM = os.environ.get("TOKENPOOL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TOKENPOOL_CHROMEDRIVER", "/usr/bin/chromedriver")
DOC_SCREENSHOTS = REPO / "docs" / "images" / "console"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--window-size=1360,900",
    "--lang=en-US",
]


class Browser:
    def __init__(self, driver: Any, shots: Path) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.shots = shots
        self.wait = WebDriverWait(driver, 30)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def text(self, css: str) -> str:
        return str(self.find(css).text)

    def wait_text(self, css: str, text: str, timeout: float = 30) -> str:
        """Until the element's text contains ``text`` (re-finding it: htmx swaps elements)."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        def seen(driver: Any) -> str | bool:
            try:
                content = driver.find_element(By.CSS_SELECTOR, css).text
            except (StaleElementReferenceException, WebDriverException):
                return False
            return content if text in content else False

        from selenium.common.exceptions import TimeoutException

        try:
            return str(WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(seen))
        except TimeoutException:
            found = self.driver.find_elements(By.CSS_SELECTOR, css)
            now = found[0].text if found else "(no such element)"
            raise AssertionError(f"{css} never showed {text!r}; it shows: {now[:2000]}") from None

    def click(self, css: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        self.wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    def fill(self, css: str, text: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(text)

    def accept_confirm(self) -> None:
        from selenium.webdriver.support import expected_conditions as ec

        self.wait.until(ec.alert_is_present()).accept()

    def dark(self, on: bool) -> None:
        scheme = "dark" if on else "light"
        self.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
        )

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        if os.environ.get("TOKENPOOL_UPDATE_DOC_SCREENSHOTS") == "1":
            DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_SCREENSHOTS / path.name)
        return path


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            f"{CHROMIUM} and {CHROMEDRIVER} are needed: run `bash hack/install-browser.sh` (make test does)",
            pytrace=False,
        )
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield Browser(driver, artifact_dir("console", "screenshots"))
    finally:
        driver.quit()
