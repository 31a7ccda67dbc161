"""The viewer in a real browser: Debian's headless chromium, driven by Selenium, against ``stepwise dev``.

What a person sees: the page opened from the link ``stepwise open`` prints, a run followed live to its end
without a reload, a cancel from the page, a loop's run counts, a refused token's message. The module has one
local stack and one browser session (each takes a few seconds to start); agents are scripted HTTP servers on
127.0.0.1. ``make test`` installs chromium and chromium-driver first (``make browser``).

The test of a loop saves a screenshot in its tmp dir; with ``VIEWER_SCREENSHOT=docs/viewer.png`` it writes
the README's too.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import JavascriptException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.agent_server import AgentServer, Reply
from tests.support.local_stack import Stack, moto_signing_key, resigned

pytestmark = pytest.mark.slow

WAIT_SECONDS = 20
EXPIRED_AT = 1_700_003_600


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the module, with its network log (to see what the page sent)."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("the viewer's tests need Debian's chromium and chromium-driver: run `make browser` (as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1700"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentServer]:
    yield from AgentServer.running()


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return stack.token("viewer")


@pytest.fixture(autouse=True)
def _no_script_errors(browser: WebDriver) -> Iterator[None]:
    """Whatever a test does, the page's script threw nothing and the CSP refused nothing."""
    browser.get_log("browser")  # what earlier tests left
    yield
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and entry.get("source") != "network"  # a refused request is a 4xx, shown
    ]
    assert problems == []


def workflow(stack: Stack, token: str, name: str, nodes: list[dict[str, Any]]) -> str:
    answer = stack.call("POST", "/api/workflows", token, json={"name": name, "nodes": nodes})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["id"])


def start(stack: Stack, token: str, workflow_id: str) -> str:
    answer = stack.call("POST", f"/api/workflows/execute/{workflow_id}", token, json={})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["data"]["executionId"])


def completed_run(stack: Stack, token: str, name: str, nodes: list[dict[str, Any]]) -> str:
    """An execution of a new workflow of ``nodes``, ended."""
    execution_id = start(stack, token, workflow(stack, token, name, nodes))
    assert stack.wait_for_end(execution_id, token)["state"] == "COMPLETED"
    return execution_id


def agent_calling(stack: Stack, token: str, agent: AgentServer, path: str, *replies: Reply) -> str:
    agent.script(path, *replies)
    answer = stack.call("POST", "/api/agents", token, json={"name": path.strip("/"), "endpoint": agent.url + path})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["id"])


def wait_until(browser: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    return WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.05).until(condition, message=what)


def execution_state(browser: WebDriver) -> str | None:
    found = browser.find_elements(By.CSS_SELECTOR, "[data-execution-state]")
    return found[0].get_attribute("data-execution-state") if found else None


def wait_for_state(browser: WebDriver, state: str) -> None:
    wait_until(browser, lambda b: execution_state(b) == state, f"the page to show {state}")


def node(browser: WebDriver, node_id: str) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'[data-node-id="{node_id}"]')


def nodes(browser: WebDriver) -> dict[str, tuple[str | None, str | None]]:
    """Every node of the graph, in order: its state and run count."""
    found = browser.find_elements(By.CSS_SELECTOR, "[data-node-id]")
    return {
        str(item.get_attribute("data-node-id")): (item.get_attribute("data-state"), item.get_attribute("data-runs"))
        for item in found
    }


def confirm(browser: WebDriver) -> None:
    wait_until(browser, lambda b: b.find_element(By.ID, "confirm").get_attribute("open") is not None, "a dialog")
    browser.find_element(By.CSS_SELECTOR, '[data-confirm="yes"]').click()


def viewer_link(stack: Stack, token: str, resource_id: str) -> str:
    opened = stack.cli("open", resource_id, "--no-browser", token=token)
    assert opened.returncode == 0, opened.stderr
    return opened.stdout.strip()


def visit(browser: WebDriver, link: str) -> None:
    """A new page load even when only the fragment differs from the page shown."""
    browser.get("about:blank")
    browser.get(link)


def sent_requests(browser: WebDriver) -> list[dict[str, Any]]:
    """The requests the page sent since the last call (Chrome's network log)."""
    requests = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append({"id": message["params"]["requestId"], **message["params"]["request"]})
    return requests


def unlabeled_controls(browser: WebDriver) -> list[str]:
    """The visible buttons, selects and inputs that have no name a screen reader could say."""
    found: list[str] = browser.execute_script(
        """
        return [...document.querySelectorAll("button, select, input, a")]
          .filter((el) => el.offsetParent !== null)
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
          .map((el) => el.outerHTML);
        """
    )
    return found


# ------------------------------------------------------------------------------------------ the tests


def test_the_link_stepwise_open_prints_shows_the_run_and_leaves_no_token_in_the_address(
    browser: WebDriver, stack: Stack, token: str
) -> None:
    greet = {"id": "greet", "type": "setVariables", "config": {"values": {"greeting": "hello"}}}
    sign = {"id": "sign", "type": "setVariables", "config": {"values": {"signed": "${greeting} from the viewer"}}}
    execution_id = completed_run(stack, token, "quick", [greet, sign])
    link = viewer_link(stack, token, execution_id)
    assert link == f"{stack.url}/ui/executions/{execution_id}#token={token}"

    visit(browser, link)
    wait_for_state(browser, "COMPLETED")

    assert token not in browser.current_url
    assert browser.current_url == f"{stack.url}/ui/executions/{execution_id}"
    assert browser.execute_script("return sessionStorage.getItem('stepwise.token')") == token
    assert nodes(browser) == {"greet": ("COMPLETED", "1"), "sign": ("COMPLETED", "1")}
    assert "✓ COMPLETED" in browser.find_element(By.CSS_SELECTOR, "[data-execution-state]").text
    assert "hello from the viewer" in browser.find_element(By.ID, "output").text
    assert browser.find_element(By.CSS_SELECTOR, '[data-action="rerun"]').is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, '[data-action="cancel"]').is_displayed()
    assert unlabeled_controls(browser) == []

    # The workflow's page lists the run and links to it; the token goes along (this tab's session storage).
    browser.find_element(By.LINK_TEXT, "quick").click()
    row = wait_until(browser, lambda b: b.find_element(By.CSS_SELECTOR, f'[data-execution-id="{execution_id}"]'), "")
    assert row.get_attribute("data-state") == "COMPLETED"
    row.find_element(By.TAG_NAME, "a").click()
    wait_for_state(browser, "COMPLETED")
    assert browser.current_url == f"{stack.url}/ui/executions/{execution_id}"


def test_a_running_execution_turns_completed_without_a_reload(
    browser: WebDriver, stack: Stack, token: str, agent: AgentServer
) -> None:
    # The agent answers when the test says so: the page must show the call running, then its end.
    released = threading.Event()
    answer = Reply(respond=lambda request: {"answer": 42} if released.wait(WAIT_SECONDS) else {"late": True})
    slow_agent = agent_calling(stack, token, agent, "/slow", answer)
    slow = workflow(
        stack,
        token,
        "slow agent",
        [
            {"id": "ask", "type": "agentTask", "config": {"agentId": slow_agent, "prompt": "take your time"}},
            {"id": "done", "type": "setVariables", "config": {"values": {"answer": "${ask.answer}"}}},
        ],
    )
    execution_id = start(stack, token, slow)

    visit(browser, f"{stack.url}/ui/executions/{execution_id}#token={token}")
    wait_until(browser, lambda b: node(b, "ask").get_attribute("data-state") == "RUNNING", "the agent call to show")
    assert execution_state(browser) == "RUNNING"
    assert nodes(browser)["done"] == ("PENDING", "0")
    browser.execute_script("window.stillTheSamePage = true")

    released.set()
    wait_for_state(browser, "COMPLETED")

    assert browser.execute_script("return window.stillTheSamePage") is True
    assert nodes(browser) == {"ask": ("COMPLETED", "1"), "done": ("COMPLETED", "1")}
    assert "Ended" in browser.find_element(By.ID, "live").text
    assert len(agent.requests) == 1


def test_cancel_from_the_page_asks_first_then_ends_canceled(browser: WebDriver, stack: Stack, token: str) -> None:
    waits = workflow(stack, token, "waits", [{"id": "nap", "type": "delay", "config": {"seconds": 60}}])
    execution_id = start(stack, token, waits)
    visit(browser, f"{stack.url}/ui/executions/{execution_id}#token={token}")
    wait_until(browser, lambda b: "waiting 60 s" in node(b, "nap").text, "the delay to show")

    # Keyboard only: Tab reaches the button, Enter asks, and the dialog's first choice keeps the run going.
    cancel = browser.find_element(By.CSS_SELECTOR, '[data-action="cancel"]')
    for _ in range(30):
        if browser.switch_to.active_element == cancel:
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element == cancel, "Tab never reached the cancel button"
    cancel.send_keys(Keys.ENTER)
    wait_until(browser, lambda b: b.find_element(By.ID, "confirm").get_attribute("open") is not None, "the dialog")
    assert "Cancel this execution?" in browser.find_element(By.ID, "confirm").text
    browser.switch_to.active_element.send_keys(Keys.ENTER)  # "Keep it running" has the focus
    time.sleep(0.5)
    assert stack.call("GET", f"/api/workflows/execute/{execution_id}", token).json()["data"]["state"] == "RUNNING"

    cancel.click()
    confirm(browser)
    wait_for_state(browser, "CANCELED")

    assert stack.call("GET", f"/api/workflows/execute/{execution_id}", token).json()["data"]["state"] == "CANCELED"
    assert f"Execution {execution_id} canceled" in browser.find_element(By.ID, "status").text
    assert node(browser, "nap").get_attribute("data-state") == "FAILED"
    assert "✗ FAILED" in node(browser, "nap").text and "canceled" in node(browser, "nap").text
    assert not cancel.is_displayed()


def test_a_pause_asked_from_the_page_shows_until_it_is_withdrawn(browser: WebDriver, stack: Stack, token: str) -> None:
    # A pause waits for the next node boundary, which a 60 s delay does not reach: it stays asked for.
    waits = workflow(stack, token, "waits long", [{"id": "nap", "type": "delay", "config": {"seconds": 60}}])
    execution_id = start(stack, token, waits)
    visit(browser, f"{stack.url}/ui/executions/{execution_id}#token={token}")
    wait_until(browser, lambda b: "waiting 60 s" in node(b, "nap").text, "the delay to show")
    badge = browser.find_element(By.CSS_SELECTOR, "[data-execution-state]")

    browser.find_element(By.CSS_SELECTOR, '[data-action="pause"]').click()
    confirm(browser)
    wait_until(browser, lambda b: "pause requested" in badge.text, "the pause request to show")
    resume = browser.find_element(By.CSS_SELECTOR, '[data-action="resume"]')
    assert resume.text == "▶ Withdraw pause"
    assert not browser.find_element(By.CSS_SELECTOR, '[data-action="pause"]').is_displayed()

    resume.click()
    confirm(browser)
    wait_until(browser, lambda b: "pause requested" not in badge.text, "the pause to be withdrawn")

    assert execution_state(browser) == "RUNNING"
    execution = stack.call("GET", f"/api/workflows/execute/{execution_id}", token).json()["data"]
    assert (execution["state"], execution["pauseRequested"]) == ("RUNNING", False)
    assert stack.call("DELETE", f"/api/workflows/execute/{execution_id}", token).status_code == 200


def test_a_looping_workflow_shows_how_often_each_node_ran(
    browser: WebDriver, stack: Stack, token: str, agent: AgentServer, tmp_path: Path
) -> None:
    # The agent says "not yet" twice, then "done"; its first answer is a 503 the node retries.
    checker = agent_calling(
        stack,
        token,
        agent,
        "/check",
        Reply(503, json={"error": "busy"}),
        Reply(json={"done": False}),
        Reply(json={"done": False}),
        Reply(json={"done": True}),
    )
    looping = workflow(
        stack,
        token,
        "poll until done",
        [
            {"id": "prepare", "type": "setVariables", "config": {"values": {"order": "A-17"}}},
            {
                "id": "check",
                "type": "agentTask",
                "config": {"agentId": checker, "prompt": "Is order ${order} shipped?"},
                "retry": {"maxAttempts": 3, "backoffSeconds": 0},
            },
            {
                "id": "decide",
                "type": "condition",
                "config": {"left": "${check.done}", "op": "eq", "right": True, "then": "finish", "else": "check"},
            },
            {"id": "finish", "type": "setVariables", "config": {"values": {"shipped": "${check.done}"}}},
        ],
    )
    execution_id = start(stack, token, looping)
    visit(browser, f"{stack.url}/ui/executions/{execution_id}#token={token}")
    wait_for_state(browser, "COMPLETED")

    assert nodes(browser) == {
        "prepare": ("COMPLETED", "1"),
        "check": ("COMPLETED", "3"),
        "decide": ("COMPLETED", "3"),
        "finish": ("COMPLETED", "1"),
    }
    assert "3 runs" in node(browser, "check").text
    assert "else → check (taken 2\u00d7)" in node(browser, "decide").text
    timeline = browser.find_elements(By.CSS_SELECTOR, ".timeline-row")
    assert [row.get_attribute("data-run-node") for row in timeline] == [
        "prepare",
        *["check", "decide"] * 3,
        "finish",
    ]
    assert "1 retry" in timeline[1].text

    node(browser, "check").find_element(By.TAG_NAME, "button").click()
    details = browser.find_element(By.ID, "node-details")
    assert "3 runs" in details.text and "Runs" in details.text

    shot = tmp_path / "viewer.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("VIEWER_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["VIEWER_SCREENSHOT"])


def test_resume_from_the_page_approves_a_waiting_approval(browser: WebDriver, stack: Stack, token: str) -> None:
    gated = workflow(
        stack,
        token,
        "gated",
        [
            {"id": "gate", "type": "approval", "config": {"message": "Ship it?"}},
            {"id": "ship", "type": "setVariables", "config": {"values": {"shipped": True}}},
        ],
    )
    execution_id = start(stack, token, gated)
    visit(browser, f"{stack.url}/ui/executions/{execution_id}#token={token}")
    wait_for_state(browser, "PAUSED")
    assert "waiting for approval" in browser.find_element(By.CSS_SELECTOR, "[data-execution-state]").text

    resume = browser.find_element(By.CSS_SELECTOR, '[data-action="resume"]')
    assert resume.text == "✓ Approve and resume"
    resume.click()
    confirm(browser)
    wait_for_state(browser, "COMPLETED")

    assert nodes(browser) == {"gate": ("COMPLETED", "1"), "ship": ("COMPLETED", "1")}


def test_rerun_sends_the_chosen_node_and_shows_what_the_api_answered(
    browser: WebDriver, stack: Stack, token: str
) -> None:
    steps = [{"id": name, "type": "setVariables", "config": {"values": {name: True}}} for name in ("a", "b", "c")]
    execution_id = completed_run(stack, token, "three steps", steps)
    visit(browser, f"{stack.url}/ui/executions/{execution_id}#token={token}")
    wait_for_state(browser, "COMPLETED")
    sent_requests(browser)

    Select(browser.find_element(By.ID, "rerun-from")).select_by_value("b")
    browser.find_element(By.CSS_SELECTOR, '[data-action="rerun"]').click()
    confirm(browser)
    page = f"{stack.url}/ui/executions/{execution_id}"
    wait_until(browser, lambda b: b.current_url != page or b.find_element(By.ID, "alert").text, "an answer")

    reruns = [r for r in sent_requests(browser) if r["url"].endswith(f"/api/workflows/execute/{execution_id}/rerun")]
    assert [(r["method"], json.loads(r["postData"])) for r in reruns] == [("POST", {"fromNode": "b"})]
    if browser.current_url == page:  # refused (before the rerun endpoint exists: a 404): the API's own words
        answer = browser.execute_cdp_cmd("Network.getResponseBody", {"requestId": reruns[0]["id"]})
        error = json.loads(answer["body"])["error"]
        assert browser.find_element(By.ID, "alert").text == f"The API refused to rerun it: {error}"
    else:  # started: the page of the new execution
        assert browser.current_url.startswith(f"{stack.url}/ui/executions/exe_")
        wait_until(browser, execution_state, "the new execution")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("malformed", "The token is not a JWT: expected three base64url parts joined by dots"),
        ("expired", "The token expired at 2023-11-14T23:13:20.000Z; get a new one"),
    ],
)
def test_a_refused_token_says_why_and_a_pasted_one_shows_the_page(
    browser: WebDriver, stack: Stack, token: str, case: str, message: str
) -> None:
    bad = {
        "malformed": "not-a-jwt",
        "expired": resigned(
            token, moto_signing_key(), iat=EXPIRED_AT - 3600, auth_time=EXPIRED_AT - 3600, exp=EXPIRED_AT
        ),
    }[case]
    quick = workflow(stack, token, "once", [{"id": "only", "type": "setVariables", "config": {"values": {"x": 1}}}])

    visit(browser, f"{stack.url}/ui/workflows/{quick}#token={bad}")
    box = wait_until(
        browser,
        lambda b: b.find_element(By.ID, "token-box") if b.find_element(By.ID, "token-box").is_displayed() else None,
        "the token form",
    )

    assert f"The API refused the token: {message}." in box.text
    assert box.get_attribute("data-token-problem") == "refused"
    assert browser.find_elements(By.CSS_SELECTOR, "[data-execution-id], [data-node-id]") == []
    assert browser.switch_to.active_element == browser.find_element(By.ID, "token-input")

    browser.switch_to.active_element.send_keys(token, Keys.ENTER)
    wait_until(browser, lambda b: b.find_element(By.ID, "workflow-title").text == "once", "the workflow's page")
    assert not box.is_displayed()


def test_without_a_token_the_page_asks_for_one(browser: WebDriver, stack: Stack) -> None:
    visit(browser, f"{stack.url}/ui/executions/exe_{'0' * 26}")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()

    box = wait_until(
        browser,
        lambda b: b.find_element(By.ID, "token-box") if b.find_element(By.ID, "token-box").is_displayed() else None,
        "the token form",
    )

    assert box.get_attribute("data-token-problem") == "missing"
    assert "Paste a bearer token" in box.text
    assert browser.execute_script("return document.getElementById('view').children.length") == 0


def test_a_page_refuses_inline_script(browser: WebDriver, stack: Stack) -> None:
    # The policy is what keeps a value an execution holds from running as code, should one ever reach the DOM.
    visit(browser, f"{stack.url}/ui/executions/exe_{'0' * 26}")
    with pytest.raises(JavascriptException, match="TrustedHTML"):
        browser.execute_script("document.body.innerHTML = '<b>x</b>'")
    browser.get_log("browser")  # the refusal is logged as an error: expected here
