"""Headless Chromium (Debian `chromium` + `chromium-driver`, `make browser`) driven by Selenium, and
the few gestures of Airflow 3.3's UI the tests make: log in, open a DAG, open its Trigger dialog, fill
its Run Parameters and date pickers."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

# Flags that work on a shared machine without a display, a GPU or network access for the browser.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
TIMEOUT = 60


@contextlib.contextmanager
def chromium(user_data_dir: Path) -> Iterator[WebDriver]:
    """The system Chromium through the system chromedriver (Selenium never downloads a browser)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.fail("chromium and chromedriver are missing: run `make browser`")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


def wait_for(driver: WebDriver, xpath: str) -> WebElement:
    return WebDriverWait(driver, TIMEOUT).until(
        expected_conditions.visibility_of_element_located((By.XPATH, xpath))
    )


def log_in(driver: WebDriver, base_url: str, user: str, password: str) -> None:
    """The simple auth manager's sign-in page; back on the home page once it has accepted."""
    driver.get(f"{base_url}/")
    wait_for(driver, "//input[@name='username']").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: "/auth/login" not in d.current_url)


def open_trigger_dialog(driver: WebDriver, base_url: str, dag_id: str) -> WebElement:
    """DAG page → Trigger (top right): the dialog with Single Run / Backfill and the Run Parameters."""
    driver.get(f"{base_url}/dags/{dag_id}")
    WebDriverWait(driver, TIMEOUT).until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))
    ).click()
    wait_for(driver, "//*[normalize-space()='Run Parameters']")
    return driver.find_element(By.CSS_SELECTOR, ".chakra-dialog__content")


def set_datetime(driver: WebDriver, field: WebElement, date: str, time: str) -> None:
    """Fill one of the UI's date-time pickers ("Select date and time"): `date` YYYY/MM/DD, `time` HH:mm."""
    field.click()
    popover = wait_for(driver, "//div[contains(@class,'chakra-popover__content')][@data-state='open']")
    popover.find_element(By.CSS_SELECTOR, "input[placeholder='YYYY/MM/DD']").send_keys(date)
    clock = popover.find_element(By.CSS_SELECTOR, "input[placeholder='HH:mm']")
    clock.send_keys(time)
    clock.send_keys(Keys.ENTER)


def button(scope: WebElement, label: str) -> WebElement:
    return scroll_to(scope.find_element(By.XPATH, f".//button[normalize-space()={label!r}]"))


def scroll_to(element: WebElement) -> WebElement:
    element.parent.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    return element


def param_input(dialog: WebElement, title: str) -> WebElement:
    """The input of the Run Parameters field whose label is the Param's `title`."""
    label = dialog.find_element(
        By.XPATH, f".//label[@data-scope='field'][starts-with(normalize-space(), {title!r})]"
    )
    return scroll_to(dialog.parent.find_element(By.ID, label.get_attribute("for")))


def set_number(field: WebElement, value: int) -> None:
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(value))


def switch_on(dialog: WebElement, param: str) -> None:
    """Turn on the switch of a boolean Param (rendered as `switch:element_<param>`)."""
    switch = scroll_to(dialog.find_element(By.ID, f"switch:element_{param}"))
    if switch.get_attribute("data-state") != "checked":
        switch.click()
    WebDriverWait(dialog.parent, TIMEOUT).until(lambda _: switch.get_attribute("data-state") == "checked")


def tick(dialog: WebElement, label: str) -> None:
    """Tick the checkbox whose label reads `label`."""
    box = scroll_to(
        dialog.find_element(
            By.XPATH, f".//label[@data-scope='checkbox'][@data-part='root'][normalize-space()={label!r}]"
        )
    )
    if box.get_attribute("data-state") != "checked":
        box.click()
    WebDriverWait(dialog.parent, TIMEOUT).until(lambda _: box.get_attribute("data-state") == "checked")


def choose_backfill(driver: WebDriver, dialog: WebElement, first: str, last: str) -> None:
    """Backfill → Date Range From `first` To `last` (YYYY/MM/DD, midnight)."""
    dialog.find_element(By.XPATH, ".//label[.//*[normalize-space()='Backfill']]").click()
    fields = dialog.find_elements(By.CSS_SELECTOR, "[data-testid=datetime-input]")
    for field, day in zip(fields, (first, last), strict=True):
        set_datetime(driver, field, day, "00:00")
        dialog.find_element(By.XPATH, ".//*[normalize-space()='Date Range']").click()  # close the picker
