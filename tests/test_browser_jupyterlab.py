"""The course as a learner uses it: JupyterLab's own UI in a real Chromium.

JupyterLab is started exactly as ``make lab`` starts it (``course.py lab``), on a free loopback
port with a fixed token, no browser of its own, and a fresh home directory (whose only user
setting turns autosave off, so that running a notebook never rewrites it). Everything after
that goes through the UI: the file browser, the menus and their dialogs, the editor. Each notebook
is run with "Restart Kernel and Run All Cells"; then its outputs are read from the page (each
prompt's ``textContent``: JupyterLab skips drawing cells off screen). The notebooks are closed
without saving, and the working tree is left as it was. A failing test saves a screenshot.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser import chromium, needs_chromium, screenshot_on_failure

from coursetools.notebooks import EXERCISES, LESSONS, ROOT, SOLUTIONS, notebooks_in, read

pytestmark = needs_chromium

TOKEN = "course-browser-test"
ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"
RUN_SECONDS = 180
PASS, FAIL, TODO = "✅ PASS", "❌ FAIL", "⏳ TO DO"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Lab:
    """A JupyterLab started as ``make lab`` starts it, for one test class."""

    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.home = home
        settings = home / "lab-settings"
        # Short, for the kernels' IPC sockets (a Unix socket path has at most 107 bytes).
        self.runtime = tempfile.mkdtemp(prefix="lab-runtime-")
        # The test's own user setting: no autosave, so running a notebook never writes it.
        autosave = settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
        autosave.parent.mkdir(parents=True)
        autosave.write_text(json.dumps({"autosave": False}))
        env = dict(
            os.environ,
            HOME=str(home),
            JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
            JUPYTER_RUNTIME_DIR=self.runtime,
            JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
        )
        command = [
            sys.executable, "course.py", "lab", "--no-browser", f"--port={self.port}",
            f"--ServerApp.token={TOKEN}", "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            # Kernels talk to the server over Unix sockets, not TCP ports: jupyter_client picks
            # a kernel's five ports by binding and releasing them, and with the rest of the suite
            # opening thousands of connections beside it, one can be taken before the kernel
            # binds it, and the kernel never starts. A learner's `make lab` keeps TCP.
            "--KernelManager.transport=ipc",
        ]  # fmt: skip
        self.log = (home / "lab.log").open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self._wait_until_up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={TOKEN}"

    def forget_open_notebooks(self) -> None:
        """After a failed test: shut down its kernels and forget the workspace's open tabs,
        which JupyterLab would otherwise restore on the next page (server API, not the UI:
        this is clean-up, not what is tested)."""
        base = f"http://127.0.0.1:{self.port}"
        headers = {"Authorization": f"token {TOKEN}"}
        with urllib.request.urlopen(urllib.request.Request(f"{base}/api/sessions", headers=headers),
                                    timeout=10) as response:
            sessions = json.load(response)
        for session in sessions:
            request = urllib.request.Request(f"{base}/api/sessions/{session['id']}",
                                             headers=headers, method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()
        request = urllib.request.Request(f"{base}/lab/api/workspaces/default", headers=headers,
                                         method="DELETE")
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=10).close()

    def log_tail(self, lines: int = 30) -> str:
        """The last lines JupyterLab logged, less the noise of every page load."""
        self.log.flush()
        kept = [line for line in Path(self.log.name).read_text(errors="replace").splitlines()
                if "Adapting from protocol" not in line and "302 GET" not in line]
        return "\n".join(kept[-lines:])

    def _wait_until_up(self) -> None:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: see {self.log.name}")
            try:  # readiness only; every action of the tests goes through the UI
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("JupyterLab did not start within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.log.close()
        shutil.rmtree(self.runtime, ignore_errors=True)


@pytest.fixture(scope="class")
def lab(tmp_path_factory):
    running = Lab(tmp_path_factory.mktemp("lab-home"))
    yield running
    running.stop()


@pytest.fixture(scope="class")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture
def page(lab, browser, request, tmp_path_factory):
    """A page on the lab, opened at its start URL; a screenshot is kept if the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else 0)
    page.goto(lab.url)
    page.wait_for_selector(ACTIVE, timeout=60_000)
    yield page
    report = getattr(request.node, "rep_call", None)  # set by conftest's report hook
    if report is not None and report.failed:
        folder = tmp_path_factory.getbasetemp() / "screenshots"
        print(f"screenshot: {screenshot_on_failure(page, folder, request.node.name)}")
        print("the end of JupyterLab's log:\n" + lab.log_tail())
        lab.forget_open_notebooks()  # so the next test does not reopen this one's tabs
    context.close()


# --- driving the UI ------------------------------------------------------------------------


def menu(page, *path: str) -> None:
    """Click a menu bar item, then the menu items along ``path``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=path[0]).click()
    for label in path[1:]:
        page.locator(".lm-Menu-itemLabel", has_text=label).first.click()


def open_notebook(page, folder: str, name: str) -> bytes:
    """Open ``folder/name`` with File > Open from Path; the file's bytes, before it ran."""
    stored = (ROOT / folder / name).read_bytes()
    menu(page, "File", "Open from Path")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill(f"{folder}/{name}")
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_function(
        """path => {
            const tab = document.querySelector('.lm-DockPanel .lm-TabBar-tab.lm-mod-current');
            return tab && (tab.title || '').includes('Path: ' + path);
        }""",
        arg=f"{folder}/{name}",
        timeout=90_000,  # a loaded machine took over 30 s once (solution 15)
    )
    # JupyterLab attaches a long notebook's cells a few at a time; wait for all of them, so
    # that "every prompt ran" below is about every cell, not the ones drawn so far.
    page.wait_for_function(
        f"n => document.querySelectorAll('{ACTIVE} .jp-Notebook .jp-Cell').length === n",
        arg=len(read(ROOT / folder / name).cells),
        timeout=60_000,
    )
    wait_for_idle_kernel(page)
    return stored


def file_browser_listing(page) -> set[str]:
    """The names the file browser shows at the course's root (its home button)."""
    page.locator(".jp-BreadCrumbs-home").first.click()
    page.wait_for_function(
        "() => document.querySelector('.jp-BreadCrumbs').textContent.replace(/\\s/g, '') === '/'"
    )
    page.wait_for_timeout(300)
    return set(page.locator(".jp-DirListing-itemName").all_text_contents())


def wait_for_idle_kernel(page, timeout: float = 60) -> None:
    page.wait_for_selector(
        f"{ACTIVE} .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout * 1000
    )


def run_all(page) -> None:
    """Clear every output, then Kernel > Restart Kernel and Run All Cells, and wait until every
    cell has run, or until the run stopped at an error (the caller then names that error)."""
    menu(page, "Edit", "Clear Outputs of All Cells")
    menu(page, "Kernel", "Restart Kernel and Run All Cells")
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    page.wait_for_function(
        f"""() => {{
            const panel = document.querySelector('{ACTIVE}');
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            if (prompts.length === 0) return false;
            if (prompts.every(p => /\\[\\d+\\]/.test(p.textContent))) return true;
            // Run All stops at an error: the cells after it lose their [*] and stay [ ].
            const idle = panel.querySelector(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']");
            return idle !== null && /\\[\\d+\\]/.test(prompts[0].textContent)
                && !prompts.some(p => p.textContent.includes('*'));
        }}""",
        timeout=RUN_SECONDS * 1000,
    )
    wait_for_idle_kernel(page)


def close_without_saving(page, path: Path, stored: bytes) -> None:
    """File > Close and Shut Down Notebook, answering every dialog without saving; then the
    file on disk must be byte for byte what it was before it was opened."""
    menu(page, "File", "Close and Shut Down Notebook")
    _answer_dialogs(page)
    assert path.read_bytes() == stored, f"{path.name} changed on disk"


def _answer_dialogs(page) -> None:
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        try:
            dialog.wait_for(timeout=2000)
        except Exception:
            return
        buttons = dialog.locator(".jp-Dialog-button")
        labels = buttons.all_text_contents()
        answers = ("Discard", "Don't Save", "Ok", "Shut Down")
        choice = next((answer for answer in answers if answer in labels), labels[-1])
        buttons.nth(labels.index(choice)).click()
        page.wait_for_timeout(300)


def cells_on_page(page) -> list[dict]:
    """Every cell of the open notebook as the page shows it (read with textContent)."""
    return page.eval_on_selector_all(
        f"{ACTIVE} .jp-Notebook .jp-Cell",
        """cells => cells.map(cell => ({
            code: cell.classList.contains('jp-CodeCell'),
            prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
            outputs: [...cell.querySelectorAll('.jp-OutputArea-output')].map(out => ({
                mime: out.dataset.mimeType || '', text: out.textContent })),
        }))""",
    )


def images_shown(page) -> list[dict]:
    """Each output image, scrolled into view: its decoded width and its alt text."""
    found = []
    for image in page.locator(f"{ACTIVE} .jp-OutputArea-output img").all():
        image.scroll_into_view_if_needed()
        image.evaluate("img => img.decode().catch(() => null)")
        found.append(image.evaluate("img => ({width: img.naturalWidth, alt: img.alt})"))
    return found


def judge_run(page, path: Path) -> None:
    """No error except where a cell is tagged to raise, no stderr, every plot shown with alt."""
    stored = read(path)
    cells = cells_on_page(page)
    assert len(cells) == len(stored.cells), "the page shows another number of cells"
    for number, (cell, source) in enumerate(zip(cells, stored.cells, strict=True)):
        if not cell["code"]:
            continue
        assert "[" in cell["prompt"] and "*" not in cell["prompt"], f"cell {number} did not run"
        # JupyterLab draws an error and a stderr stream with the same mime type.
        stderr = [o["text"] for o in cell["outputs"] if o["mime"].endswith("stderr")]
        if "raises-exception" in source.metadata.get("tags", []):
            assert stderr, f"cell {number} is tagged to raise but showed no error"
        else:
            assert not stderr, f"cell {number} showed stderr or an error: {stderr[0][:300]}"
    for image in images_shown(page):
        assert image["width"] > 0, "a plot is not shown"
        assert len(image["alt"].split()) >= 5, f"a plot without alternative text: {image}"


# --- the tests ------------------------------------------------------------------------------


class TestFreshStart:
    def test_opens_on_lesson_00_with_no_dialog_and_only_the_course_in_the_file_browser(
        self, page
    ):
        current = page.locator(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")
        assert "00_asyncio_in_jupyter.ipynb" in current.all_text_contents()
        wait_for_idle_kernel(page)
        page.wait_for_timeout(1500)  # a "Select Kernel" or news dialog would be up by now
        assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").all_inner_texts()
        assert page.locator(".jp-Notification-Toast").count() == 0
        names = file_browser_listing(page)
        assert {"notebooks", "exercises", "solutions", "local_server", "README.md"} <= names
        leftovers = {n for n in names if n.endswith(".egg-info") or n in {"build", "_build"}}
        assert not leftovers
        assert page.console_errors == []


def _runs(folder: Path) -> list:
    return [pytest.param(path, id=f"{folder.name}/{path.stem}") for path in notebooks_in(folder)]


class TestLessons:
    @pytest.mark.parametrize("path", _runs(LESSONS))
    def test_restart_and_run_all(self, page, path):
        stored = open_notebook(page, "notebooks", path.name)
        run_all(page)
        judge_run(page, path)
        close_without_saving(page, path, stored)


class TestSolutions:
    @pytest.mark.parametrize("path", _runs(SOLUTIONS))
    def test_restart_and_run_all_and_every_check_passes(self, page, path):
        stored = open_notebook(page, "solutions", path.name)
        run_all(page)
        judge_run(page, path)
        verdicts = [
            out["text"]
            for cell in cells_on_page(page)
            for out in cell["outputs"]
            if out["text"].startswith(("✅", "❌", "⏳"))
        ]
        assert verdicts and all(v.startswith(PASS) for v in verdicts), verdicts
        close_without_saving(page, path, stored)


FIRST_STUB = 'raise NotImplementedError("your code here")'
MODEL_ANSWER = """async def fetch_json(url: str) -> dict:
async with aiohttp.ClientSession() as session:
async with session.get(url) as response:
return await response.json()"""
WRONG_ANSWER = """async def fetch_json(url: str) -> dict:
async with aiohttp.ClientSession() as session:
async with session.get(url) as response:
return response.json()"""


def type_into_cell(page, index: int, text: str) -> None:
    """Replace the source of code cell ``index`` by typing ``text`` (the editor indents)."""
    editor = page.locator(f"{ACTIVE} .jp-CodeCell").nth(index).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    for number, line in enumerate(text.split("\n")):
        if number:
            page.keyboard.press("Enter")  # the editor indents the next line itself
        page.keyboard.type(line)


def run_cell(page, index: int) -> str:
    """Run code cell ``index`` with Shift+Enter; the text of its outputs."""
    cell = page.locator(f"{ACTIVE} .jp-CodeCell").nth(index)
    cell.locator(".cm-content").click()
    before = cell.locator(".jp-InputPrompt").text_content()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        """([panel, index, before]) => {
            const prompt = document.querySelectorAll(panel + ' .jp-CodeCell')[index]
                .querySelector('.jp-InputPrompt').textContent;
            return /\\[\\d+\\]/.test(prompt) && prompt !== before;
        }""",
        arg=[ACTIVE, index, before],
        timeout=60_000,
    )
    return " ".join(cell.locator(".jp-OutputArea-output").all_text_contents())


class TestExercise:
    def test_a_stub_a_model_answer_and_a_wrong_one(self, page):
        path = EXERCISES / "00_asyncio_in_jupyter.ipynb"
        stored = open_notebook(page, "exercises", path.name)
        run_all(page)
        code = [c for c in cells_on_page(page) if c["code"]]
        verdicts = [o["text"] for c in code for o in c["outputs"] if o["text"][:1] in "✅❌⏳"]
        assert verdicts and all(v.startswith(TODO) for v in verdicts), verdicts
        sources = [cell.source for cell in read(path).cells if cell.cell_type == "code"]
        stub = next(i for i, s in enumerate(sources) if FIRST_STUB in s)
        check = stub + 1
        assert sources[check].startswith("check.fetch_json")
        type_into_cell(page, stub, MODEL_ANSWER)
        run_cell(page, stub)
        assert run_cell(page, check).startswith(f"{PASS} fetch_json")
        type_into_cell(page, stub, WRONG_ANSWER)
        run_cell(page, stub)
        verdict = run_cell(page, check)
        assert verdict.startswith(f"{FAIL} fetch_json"), verdict
        assert "await" in verdict
        close_without_saving(page, path, stored)


def test_lab_settings_are_the_courses():
    settings = json.loads((ROOT / "jupyter" / "overrides.json").read_text())
    assert settings["@jupyterlab/notebook-extension:tracker"]["autoStartDefaultKernel"] is True
    assert settings["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
