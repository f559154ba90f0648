"""The web page at `/`, end to end in headless Chromium: type a text, submit, read the probability bars.

Needs the Debian packages `chromium` and `chromium-driver` and the `selenium` package (the dev extra);
skipped, saying which is missing, where they are not installed. `.ci/run` installs the browser.
"""

from __future__ import annotations

import re
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image  # matplotlib's dependency (the report extra)

from conftest import make_corpus, serving
from zhcls.config import TrainingConfig
from zhcls.data.example import Example
from zhcls.models.base import build_model

TEXT = "足球比赛冠军"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser_or_skip() -> tuple[str, str]:
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install 'zhcls[dev]')")
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if browser is None:
        pytest.skip("no Chromium binary (apt-get install chromium)")
    driver = shutil.which("chromedriver")
    if driver is None:
        pytest.skip("no chromedriver (apt-get install chromium-driver)")
    return browser, driver


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    browser, driver = _browser_or_skip()
    from zhcls.export.onnx import export_bundle

    root = tmp_path_factory.mktemp("web")
    corpus = make_corpus()
    params = {"embed_dim": 16, "num_filters": 16}
    build_model("textcnn.v1", params, TrainingConfig(epochs=3, batch_size=8, lr=1e-2)).fit(corpus.texts, corpus.labels).save(root / "model")
    export_bundle(root / "model", root / "bundle", data=[Example(t, l) for t, l in zip(corpus.texts, corpus.labels)], latency_texts=5)
    with serving(root / "bundle") as (base, _):
        yield {"base": base, "browser": browser, "driver": driver}


@pytest.fixture(scope="module")
def chrome(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = server["browser"]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,900", "--lang=zh-CN"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(server["driver"]), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_the_form_shows_the_apis_probabilities_as_bars(server, chrome, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chrome.get(server["base"] + "/")
    assert "zhcls" in chrome.title
    chrome.find_element(By.ID, "text").send_keys(TEXT)
    chrome.find_element(By.ID, "go").click()
    WebDriverWait(chrome, 30).until(lambda d: d.find_element(By.ID, "result").is_displayed() and d.find_elements(By.CSS_SELECTOR, "#bars .row"))
    assert not chrome.find_element(By.ID, "error").is_displayed()

    api = httpx.post(server["base"] + "/v1/predict", json={"texts": [TEXT]}, timeout=10).json()["predictions"][0]
    rows = chrome.find_elements(By.CSS_SELECTOR, "#bars .row")
    shown = [
        (
            row.find_element(By.CLASS_NAME, "name").get_attribute("textContent"),
            row.find_element(By.CLASS_NAME, "pct").get_attribute("textContent"),
            row.find_element(By.CLASS_NAME, "fill").get_attribute("style"),
        )
        for row in rows
    ]
    assert [name for name, *_ in shown] == list(api["scores"])  # every label, most probable first
    for (_, pct, style), p in zip(shown, api["scores"].values()):
        assert pct.endswith("%") and abs(float(pct[:-1]) - 100 * p) <= 0.051  # the page rounds to 0.1 point
        width = float(re.search(r"width:\s*([0-9.]+)%", style).group(1))
        assert abs(width - 100 * p) <= 0.006  # the bar's length is the probability (2 decimals)
    assert "best" in rows[0].get_attribute("class")
    top = chrome.find_element(By.ID, "top").text
    assert top.startswith(api["label"]) and top.endswith(shown[0][1])

    png = chrome.get_screenshot_as_png()
    (tmp_path / "page.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
    image = Image.open(tmp_path / "page.png")
    image.verify()  # the whole file: chunk CRCs and the image data
    rgb = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    assert rgb.shape[0] >= 300 and rgb.shape[1] >= 300
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20, "the screenshot is blank"
    best = np.array([0x1A, 0x7F, 0x37])  # --best, the top bar's colour in the light theme
    assert (np.abs(rgb.astype(int) - best).max(axis=2) <= 8).sum() > 50, "no top bar in the screenshot"
