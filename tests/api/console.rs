//! The web console in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`) against a real server. Without
//! chromedriver the test says loudly that it was skipped; with `CI` set it
//! fails instead. A failed step leaves a screenshot of the page under the
//! target directory's `console-screenshots`; `TASKLOG_CONSOLE_SCREENSHOTS=<dir>`
//! keeps one of every page the test passes through.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::*;

const CHROMEDRIVER: &str = "chromedriver";
/// How long a step waits for the page to show what it expects.
const PATIENCE: Duration = Duration::from_secs(15);

struct Browser {
    client: Client,
    driver: Child,
    base: String,
    /// Chromium's profile, removed with the browser.
    user_data: PathBuf,
}

type Step = Result<(), String>;

impl Browser {
    /// Headless Chromium under a chromedriver of its own, or `None` when this
    /// machine has no chromedriver and CI is not asking for the test.
    async fn start(base: &str) -> Option<Browser> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        // In a process group of its own, with the Chromium it starts, so that
        // a test that fails anywhere leaves neither running.
        let driver = match Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(driver) => driver,
            Err(error) if std::env::var_os("CI").is_some() => {
                panic!("CI is set and {CHROMEDRIVER} did not start ({error}): install chromium and chromium-driver")
            }
            Err(error) => {
                eprintln!(
                    "\n*** SKIPPED: the console's browser test: {CHROMEDRIVER} did not start ({error}); \
                     install Debian's chromium and chromium-driver to run it ***\n"
                );
                return None;
            }
        };
        let user_data = std::env::temp_dir().join(format!("tasklog-console-{port}"));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1400",
                    format!("--user-data-dir={}", user_data.display()),
                ]
            }
        });
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(capabilities.as_object().unwrap().clone());
        let started = Instant::now();
        let client = loop {
            match builder.connect(&format!("http://127.0.0.1:{port}")).await {
                Ok(client) => break client,
                Err(error) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("no browser session from {CHROMEDRIVER}: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        Some(Browser {
            client,
            driver,
            base: base.to_owned(),
            user_data,
        })
    }

    async fn open(&self, path: &str) -> Step {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .map_err(|e| format!("opening {path}: {e}"))
    }

    /// The text of the first element `css` finds, "" when none does.
    async fn text(&self, css: &str) -> Result<String, String> {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
        let text = self
            .client
            .execute(script, vec![json!(css)])
            .await
            .map_err(|e| format!("reading {css}: {e}"))?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the element `css` finds holds `wanted`.
    async fn wait_for_text(&self, css: &str, wanted: &str) -> Step {
        let started = Instant::now();
        loop {
            let text = self.text(css).await?;
            if text.contains(wanted) {
                return Ok(());
            }
            if started.elapsed() > PATIENCE {
                return Err(format!("{css} never showed {wanted:?}; it shows {text:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements `css` finds.
    async fn count(&self, css: &str) -> Result<usize, String> {
        let found = self
            .client
            .find_all(Locator::Css(css))
            .await
            .map_err(|e| format!("finding {css}: {e}"))?;
        Ok(found.len())
    }

    /// Clicks the button whose text or label is `label`, waiting for it.
    async fn click(&self, label: &str) -> Step {
        let xpath = format!("//button[normalize-space()='{label}' or @aria-label='{label}']");
        let started = Instant::now();
        loop {
            // A page that redraws itself may replace the button between the
            // find and the click: find it again.
            let clicked = match self.client.find(Locator::XPath(&xpath)).await {
                Ok(button) => button.click().await.is_ok(),
                Err(_) => false,
            };
            if clicked {
                return Ok(());
            }
            if started.elapsed() > PATIENCE {
                return Err(format!("no button {label:?} to click"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) -> Step {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("finding {css}: {e}"))?;
        field.clear().await.map_err(|e| e.to_string())?;
        field.send_keys(text).await.map_err(|e| e.to_string())
    }

    async fn sign_in(&self, token: &str, name: &str) -> Step {
        self.open("/").await?;
        self.wait_for_text("h1", "Sign in").await?;
        self.type_into("#token", token).await?;
        self.click("Sign in").await?;
        self.wait_for_text("#who", &format!("Signed in as {name}"))
            .await
    }

    async fn screenshot(&self, dir: &std::path::Path, name: &str) -> Option<PathBuf> {
        let png = self.client.screenshot().await.ok()?;
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).ok()?;
        Some(path)
    }

    /// Runs one step of the test; a failed one leaves a screenshot.
    async fn step(&self, name: &str, outcome: Step) {
        if let Some(dir) = std::env::var_os("TASKLOG_CONSOLE_SCREENSHOTS") {
            self.screenshot(std::path::Path::new(&dir), name).await;
        }
        if let Err(why) = outcome {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
            let shot = self.screenshot(&dir, name).await;
            self.close().await;
            panic!("console step {name:?} failed: {why}; screenshot: {shot:?}");
        }
    }

    /// Ends the session: chromedriver quits Chromium, which killing
    /// chromedriver alone would leave running.
    async fn close(&self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.user_data);
    }
}

/// A worker's claim of `task_type`, answered at once.
async fn claim_now(api: &TestServer, task_type: &str) -> Answer {
    let mut body = claim_body("w1", &[task_type]);
    body["waitSeconds"] = json!(0);
    api.post_json(reqwest::Method::POST, "/v1/tasks/claim", WORKER, body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    let api = TestServer::start().await;
    let Some(browser) = Browser::start(&api.base).await else {
        return;
    };
    let b = &browser;

    b.step("sign-in", b.sign_in(ADMIN, "admin").await).await;

    // Tasks made through the API are listed, and filtered by text in the name.
    let first = api.create("console-first", "email", 5).await;
    api.create("console-second", "email", 3).await;
    api.create("console-third", "email", 1).await;
    let listed = async {
        b.open("/ui/tasks").await?;
        for name in ["console-first", "console-second", "console-third"] {
            b.wait_for_text("main table", name).await?;
        }
        b.open("/ui/tasks?nameContains=SECOND").await?;
        b.wait_for_text("main table", "console-second").await?;
        match b.count("main tbody tr").await? {
            1 => Ok(()),
            rows => Err(format!("{rows} rows hold \"second\"")),
        }
    };
    b.step("tasks-listed", listed.await).await;

    // A task's timeline grows as a worker claims and completes it.
    let timeline = async {
        b.open(&format!("/ui/tasks/{first}")).await?;
        b.wait_for_text("#timeline", "TaskCreated").await?;
        let claimed = claim_now(&api, "email").await;
        if claimed.body["id"] != first.as_str() {
            return Err(format!("the worker claimed {:?}", claimed.body));
        }
        b.wait_for_text("#timeline", "TaskStarted").await?;
        b.wait_for_text("#timeline", "w1").await?;
        let complete = json!({"worker": "w1", "result": {"sent": 1}});
        let answer = api
            .post_json(
                reqwest::Method::POST,
                &format!("/v1/tasks/{first}/complete"),
                WORKER,
                complete,
            )
            .await;
        if answer.status != StatusCode::OK {
            return Err(format!("complete answered {:?}", answer.body));
        }
        b.wait_for_text("#timeline", "TaskCompleted").await?;
        b.wait_for_text("main", "\"sent\": 1").await?;
        b.wait_for_text("main dl", "completed").await
    };
    b.step("task-timeline", timeline.await).await;

    let as_of = async {
        let link = "//table[@id='timeline']//tr[1]//a[normalize-space()='Show as of this event']";
        let link = b
            .client
            .find(Locator::XPath(link))
            .await
            .map_err(|e| e.to_string())?;
        link.click().await.map_err(|e| e.to_string())?;
        b.wait_for_text("main", "As it stood after event 0").await?;
        b.wait_for_text("main dl", "pending").await
    };
    b.step("task-as-of", as_of.await).await;

    // The live log shows an event as it happens; paused, it shows none until
    // resumed, and then the ones it missed.
    let live = async {
        b.open("/ui/log").await?;
        b.wait_for_text("#stream-state", "Live from position")
            .await?;
        let id = api.create("live-one", "report", 1).await;
        b.wait_for_text(&format!("main table a[href='/ui/tasks/{id}']"), &id)
            .await?;
        b.click("Pause").await?;
        b.wait_for_text("#stream-state", "Paused").await?;
        let missed = api.create("while-paused", "report", 1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if b.text("main table").await?.contains(&missed) {
            return Err("a paused log showed a new event".into());
        }
        b.click("Resume").await?;
        b.wait_for_text("main table", &missed).await
    };
    b.step("live-log", live.await).await;

    // A paused queue hands out nothing until resumed.
    let queues = async {
        b.open("/ui/queues").await?;
        b.wait_for_text("tr[data-type='email']", "open").await?;
        b.click("Pause email").await?;
        b.wait_for_text("tr[data-type='email']", "paused").await?;
        let claim = claim_now(&api, "email").await;
        if claim.status != StatusCode::NO_CONTENT {
            return Err(format!("a paused queue answered a claim: {:?}", claim.body));
        }
        b.click("Resume email").await?;
        b.wait_for_text("tr[data-type='email']", "open").await?;
        match claim_now(&api, "email").await.status {
            StatusCode::OK => Ok(()),
            status => Err(format!("a resumed queue answered a claim with {status}")),
        }
    };
    b.step("queues", queues.await).await;

    // Failed tasks, selected on the tasks page, are retried in one request.
    let mut failed = Vec::new();
    for name in ["flaky-1", "flaky-2"] {
        let id = api.create(name, "flaky", 1).await;
        claim_now(&api, "flaky").await;
        let fail = json!({"worker": "w1", "error": "the disk was full"});
        api.post_json(
            reqwest::Method::POST,
            &format!("/v1/tasks/{id}/fail"),
            WORKER,
            fail,
        )
        .await;
        failed.push(id);
    }
    let retried = async {
        b.open("/ui/tasks?state=failed&type=flaky").await?;
        b.wait_for_text("main table", "flaky-2").await?;
        let all = b
            .client
            .find(Locator::Css("thead input[type='checkbox']"))
            .await
            .map_err(|e| e.to_string())?;
        all.click().await.map_err(|e| e.to_string())?;
        b.click("Retry selected").await?;
        b.wait_for_text("#status", "Retried 2, skipped 0").await?;
        b.wait_for_text("main table", "No tasks on this page").await
    };
    b.step("bulk-retry", retried.await).await;
    let pending = async {
        for id in &failed {
            let state = &api.get(&format!("/v1/tasks/{id}")).await.body["state"];
            if state != "pending" {
                return Err(format!("a retried task is {state}"));
            }
        }
        Ok(())
    };
    b.step("bulk-retried", pending.await).await;

    // Schedules with their next run, paused from the page; consumers with their
    // lag; the log verified.
    let schedule = json!({
        "name": "nightly-report", "recurrence": {"cron": "30 3 * * *"},
        "startTime": "2030-01-02T00:00:00Z",
        "task": {"name": "report", "type": "report", "priority": 1, "data": {}, "expiresAfterSeconds": 3600},
    });
    let made = api.post("/v1/schedules", schedule).await;
    assert_eq!(made.status, StatusCode::OK, "{:?}", made.body);
    let consumer = json!({"position": 2});
    let moved = api
        .post_json(
            reqwest::Method::PUT,
            "/v1/consumers/warehouse",
            ADMIN,
            consumer,
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    let others = async {
        b.open("/ui/schedules").await?;
        b.wait_for_text("main table", "nightly-report").await?;
        b.wait_for_text("main table", "active").await?;
        b.click("Pause nightly-report").await?;
        b.wait_for_text("main table", "paused").await?;
        b.open("/ui/consumers").await?;
        b.wait_for_text("main table", "warehouse").await?;
        let lag = (api.position().await - 2).to_string();
        let row = b.text("main tbody tr").await?;
        if !row.split_whitespace().any(|cell| cell == lag) {
            return Err(format!("the consumer's row {row:?} shows no lag of {lag}"));
        }
        b.open("/ui/verify").await?;
        b.click("Verify the log").await?;
        b.wait_for_text("#verification", "The log verifies").await
    };
    b.step("schedules-consumers-verify", others.await).await;

    // A read-only token sees the same pages without an action on them.
    let read_only = async {
        b.click("Sign out").await?;
        b.sign_in(READER, "reader").await?;
        b.open("/ui/queues").await?;
        b.wait_for_text("tr[data-type='email']", "open").await?;
        b.open("/ui/tasks").await?;
        b.wait_for_text("main table", "console-second").await?;
        b.open(&format!("/ui/tasks/{first}")).await?;
        b.wait_for_text("main", "The timeline needs a token with events:read")
            .await?;
        let pages = [
            ("/ui/queues", "Queues"),
            ("/ui/tasks", "Tasks"),
            ("/ui/schedules", "Schedules"),
            ("/ui/verify", "Verify"),
        ];
        for (page, title) in pages {
            b.open(page).await?;
            b.wait_for_text("h1", title).await?;
            // Buttons other than the filters' own, and the boxes that select tasks.
            let (buttons, boxes) = (
                b.count("main button:not(.filters button)").await?,
                b.count("main input[type='checkbox']").await?,
            );
            if buttons + boxes > 0 {
                return Err(format!(
                    "{page} shows {buttons} buttons and {boxes} checkboxes"
                ));
            }
        }
        Ok(())
    };
    b.step("read-only", read_only.await).await;
    b.close().await;
}
