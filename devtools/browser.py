"""A headless Chromium for the report tests and the docs' screenshot: Debian's
``chromium`` and ``chromium-driver``, found on the PATH or installed with apt-get (once,
under a lock, however many test workers ask), driven by selenium with no network."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

PACKAGES = ("chromium", "chromium-driver")
#: One apt-get at a time across the processes of a test run (pytest-xdist workers).
LOCK = Path(tempfile.gettempdir()) / "icrm-sgl-browser-install.lock"
#: Headless, as root in a container, without a GPU, and every request sent to a closed
#: loopback port: the page may fetch nothing.
ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


class BrowserMissing(RuntimeError):
    """Chromium or its driver is not installed and could not be installed."""


def _found() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def _apt(*args: str) -> None:
    """Run apt-get as root (through ``sudo -n`` when this process is not root)."""
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        [*prefix, "apt-get", *args], check=True, env=env, capture_output=True, timeout=900
    )


def chromium_paths() -> tuple[str, str]:
    """(chromium, chromedriver), installing Debian's packages first when either is missing;
    a ``BrowserMissing`` saying what to install when that fails."""
    with FileLock(str(LOCK)):
        found = _found()
        if found:
            return found
        try:
            try:
                _apt("install", "-y", *PACKAGES)
            except subprocess.CalledProcessError:  # a stale package list
                _apt("update")
                _apt("install", "-y", *PACKAGES)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            raise BrowserMissing(
                f"cannot install {' '.join(PACKAGES)} ({exc}; "
                f"{detail.decode(errors='replace').strip()[-300:]}): install them as root"
            ) from exc
        found = _found()
        if not found:
            raise BrowserMissing(f"{' '.join(PACKAGES)} installed but not on the PATH")
        return found


@contextmanager
def chromium_driver(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A selenium driver of headless Chromium that cannot reach the network, quit after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
        )
        yield driver
    finally:
        driver.quit()
