//! The supervisor of one upstream: connects (spawning the child process, opening the HTTP
//! session or calling the in-process connector), lists the server's tools, resources and
//! prompts into the shared cache, waits for the connection to end, and reconnects with
//! exponential backoff; and Warden's client side of each connection, which refuses everything
//! an upstream might ask of the agent.

#![allow(deprecated)]

use super::*;

/// Warden's client side towards an upstream: refuses everything an upstream might ask of the
/// agent and keeps the cached tool list fresh.
#[derive(Clone)]
struct UpstreamClient {
    shared: Arc<Shared>,
    timeout: Duration,
    asks: ClientAsks,
}

fn refused(what: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("Warden does not relay {what} requests from this upstream server to agents (the catalog does not describe them)"),
        None,
    )
}

impl UpstreamClient {
    /// Pass `request` to the agent whose request it belongs to: the only request in flight.
    async fn ask(
        &self,
        allowed: bool,
        what: &str,
        request: ServerRequest,
    ) -> Result<ClientResult, ErrorData> {
        if !allowed {
            return Err(refused(what));
        }
        match self.shared.inflight.sole() {
            Some(relay) => relay.ask(request).await,
            None => Err(ErrorData::invalid_request(
                format!(
                    "Warden cannot tell which agent this {what} request is for: it names no request, and {} requests are in flight",
                    self.shared.inflight.len()
                ),
                None,
            )),
        }
    }
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            self.asks.capabilities(),
            Implementation::new("warden", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
        match self.ask(self.asks.sampling, "sampling", request).await? {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            _ => Err(ErrorData::internal_error(
                "the agent answered sampling with something else",
                None,
            )),
        }
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let request = ServerRequest::ListRootsRequest(ListRootsRequest::default());
        match self.ask(self.asks.roots, "roots", request).await? {
            ClientResult::ListRootsResult(r) => Ok(r),
            _ => Err(ErrorData::internal_error(
                "the agent answered roots/list with something else",
                None,
            )),
        }
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let request = ServerRequest::ElicitRequest(ElicitRequest::new(request));
        match self
            .ask(self.asks.elicitation, "elicitation", request)
            .await?
        {
            ClientResult::ElicitResult(r) => Ok(r),
            _ => Err(ErrorData::internal_error(
                "the agent answered elicitation with something else",
                None,
            )),
        }
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(relay) = self.shared.inflight.find(&params.progress_token) {
            relay.hear(Note::Progress {
                progress: params.progress,
                total: params.total,
                message: params.message,
            });
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // The upstream session is shared by every agent, and a log message names no request:
        // it could be about any agent's work, so it reaches none. (Log messages an HTTP upstream
        // sends on a call's own response stream do reach that call's agent.)
        tracing::debug!(
            upstream = %self.shared.name,
            level = ?params.level,
            "log message from the upstream (not relayed: it names no request): {}",
            params.data
        );
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.refresh(context.peer, ListKind::Tools);
    }

    async fn on_resource_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.refresh(context.peer, ListKind::Resources);
    }

    async fn on_prompt_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.refresh(context.peer, ListKind::Prompts);
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.shared.changes.send(Change::Updated(params.uri));
    }
}

impl UpstreamClient {
    /// List `kind` again, in the background, and tell the gateway the list changed.
    fn refresh(&self, peer: Peer<RoleClient>, kind: ListKind) {
        let shared = self.shared.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            let fresh = tokio::time::timeout(timeout, async {
                match kind {
                    ListKind::Tools => peer.list_all_tools().await.map(|t| {
                        shared.write().tools = Arc::new(index(t));
                        shared.tasks.generation.fetch_add(1, Ordering::SeqCst);
                    }),
                    ListKind::Resources => {
                        let r = peer.list_all_resources().await?;
                        let t = peer.list_all_resource_templates().await.unwrap_or_default();
                        let mut l = shared.write();
                        l.resources = Arc::new(r);
                        l.templates = Arc::new(t);
                        Ok(())
                    }
                    ListKind::Prompts => peer
                        .list_all_prompts()
                        .await
                        .map(|p| shared.write().prompts = Arc::new(p)),
                }
            })
            .await;
            if matches!(fresh, Ok(Ok(()))) {
                shared.changed.notify_waiters();
                let _ = shared.changes.send(Change::List(kind));
            }
        });
    }
}

fn index(tools: Vec<Tool>) -> HashMap<String, Tool> {
    tools.into_iter().map(|t| (t.name.to_string(), t)).collect()
}

type Running = RunningService<RoleClient, UpstreamClient>;
type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Resolve `@name` to the `name` binary beside the running executable.
pub fn resolve_program(program: &str) -> std::io::Result<std::path::PathBuf> {
    match program.strip_prefix('@') {
        None => Ok(program.into()),
        Some(name) => {
            let exe = std::env::current_exe()?;
            let dir = exe.parent().ok_or_else(|| {
                std::io::Error::other("the running executable has no parent folder")
            })?;
            let mut path = dir.join(name);
            if cfg!(windows) {
                path.set_extension("exe");
            }
            if !path.exists() {
                // `cargo test` runs binaries from target/debug/deps; look one level up too.
                if let Some(up) = dir.parent().map(|d| d.join(name)).filter(|p| p.exists()) {
                    return Ok(up);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "`{name}` was not found beside warden in `{}` (build it with `cargo build --workspace`)",
                        dir.display()
                    ),
                ));
            }
            Ok(path)
        }
    }
}

/// Why a connection attempt failed: the operator's message, and whether the command could not
/// be started at all (then nothing waits for it; see [`Upstream::wait_until`]).
struct Failure {
    message: String,
    cannot_start: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            cannot_start: false,
        }
    }
}

/// The failure to start `program`: a missing or non-executable program is named as such.
fn start_failure(program: &str, e: &std::io::Error) -> Failure {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => Some("the program does not exist"),
        std::io::ErrorKind::PermissionDenied => Some("the program is not executable"),
        _ => None,
    };
    Failure {
        message: match what {
            Some(what) => format!("cannot start `{program}`: {what} ({e})"),
            None => format!("cannot start `{program}`: {e}"),
        },
        cannot_start: what.is_some(),
    }
}

fn connect<'a>(
    transport: &'a Transport,
    client: UpstreamClient,
    scrub_env: &'a [String],
    max_bytes: usize,
) -> BoxFut<'a, Result<(Running, Option<u32>), Failure>> {
    Box::pin(async move {
        match transport {
            Transport::Command { program, args, env } => {
                let path = resolve_program(program).map_err(|e| start_failure(program, &e))?;
                let mut cmd = tokio::process::Command::new(&path);
                cmd.args(args);
                for v in scrub_env {
                    cmd.env_remove(v);
                }
                cmd.envs(env)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::inherit())
                    .kill_on_drop(true);
                let mut child = cmd
                    .spawn()
                    .map_err(|e| start_failure(&path.display().to_string(), &e))?;
                let pid = child.id();
                let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                    return Err(format!("cannot start `{}`: no stdio pipes", path.display()).into());
                };
                let proc = LineTransport::new(stdout, stdin, max_bytes)
                    .with_child(child)
                    .with_notes(client.shared.inflight.clone())
                    .with_raw(client.shared.lines.clone());
                let running = client
                    .serve(proc)
                    .await
                    .map_err(|e| format!("the MCP handshake with `{program}` failed: {e}"))?;
                Ok((running, pid))
            }
            Transport::Http { url } => {
                // Calls (`crate::upstream::rawhttp`) are sent in this client's session.
                let t = StreamableHttpClientTransport::with_client(
                    Recording::new(client.shared.session.clone()),
                    StreamableHttpClientTransportConfig::with_uri(url.as_str())
                        .reinit_on_expired_session(true),
                );
                let running = client
                    .serve(t)
                    .await
                    .map_err(|e| format!("the MCP handshake with `{url}` failed: {e}"))?;
                Ok((running, None))
            }
            Transport::InProcess(connector) => {
                let io = connector().map_err(|e| format!("cannot connect in process: {e}"))?;
                let (read, write) = tokio::io::split(io);
                let notes = client.shared.inflight.clone();
                let raw = client.shared.lines.clone();
                let running = client
                    .serve(
                        LineTransport::new(read, write, max_bytes)
                            .with_notes(notes)
                            .with_raw(raw),
                    )
                    .await
                    .map_err(|e| format!("the MCP handshake failed: {e}"))?;
                Ok((running, None))
            }
        }
    })
}

/// What an upstream serves: tools, resources, resource templates and prompts.
type Lists = (Vec<Tool>, Vec<Resource>, Vec<ResourceTemplate>, Vec<Prompt>);

async fn fetch_lists(peer: &Peer<RoleClient>) -> Result<Lists, String> {
    let caps = peer.peer_info().map(|i| i.capabilities.clone());
    let tools = match caps.as_ref().map(|c| c.tools.is_some()) {
        Some(false) => Vec::new(),
        _ => peer
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?,
    };
    let (resources, templates) = match caps.as_ref().map(|c| c.resources.is_some()) {
        Some(true) => (
            peer.list_all_resources().await.unwrap_or_default(),
            peer.list_all_resource_templates().await.unwrap_or_default(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let prompts = match caps.as_ref().map(|c| c.prompts.is_some()) {
        Some(true) => peer.list_all_prompts().await.unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok((tools, resources, templates, prompts))
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn supervise(
    shared: Arc<Shared>,
    transport: Transport,
    asks: ClientAsks,
    timeout: Duration,
    scrub_env: Vec<String>,
    max_bytes: usize,
    stop: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = Instant::now();
        let client = UpstreamClient {
            shared: shared.clone(),
            timeout,
            asks,
        };
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            r = tokio::time::timeout(timeout, connect(&transport, client, &scrub_env, max_bytes)) => r,
        };
        match attempt {
            Err(_) => shared.down(format!(
                "no MCP handshake within {} ms",
                timeout.as_millis()
            )),
            Ok(Err(e)) => shared.fail(e.message, e.cannot_start),
            Ok(Ok((running, pid))) => {
                let lists = tokio::time::timeout(timeout, fetch_lists(running.peer())).await;
                match lists {
                    Err(_) => shared.down(format!(
                        "tools/list took longer than {} ms",
                        timeout.as_millis()
                    )),
                    Ok(Err(e)) => shared.down(e),
                    Ok(Ok((tools, resources, templates, prompts))) => {
                        let kill = CancellationToken::new();
                        {
                            let mut l = shared.write();
                            l.peer = Some(running.peer().clone());
                            l.pid = pid;
                            l.tools = Arc::new(index(tools));
                            l.resources = Arc::new(resources);
                            l.templates = Arc::new(templates);
                            l.prompts = Arc::new(prompts);
                            l.connects += 1;
                            l.hung = false;
                            l.cannot_start = false;
                            l.kill = Some(kill.clone());
                        }
                        shared.changed.notify_waiters();
                        let _ = shared.changes.send(Change::Reconnected);
                        let ct = running.cancellation_token();
                        let wait = running.waiting();
                        tokio::pin!(wait);
                        let (stopping, killed) = tokio::select! {
                            _ = &mut wait => (false, false),
                            _ = stop.cancelled() => (true, false),
                            _ = kill.cancelled() => (false, true),
                        };
                        if stopping || killed {
                            // Closing the transport kills a child process.
                            ct.cancel();
                            let _ = wait.await;
                        }
                        if stopping {
                            shared.down("Warden is shutting down".into());
                            return;
                        }
                        if killed {
                            // Restart at once: callers are failing fast meanwhile.
                            shared.down("it stopped answering; Warden is restarting it".into());
                            backoff = MIN_BACKOFF;
                            continue;
                        }
                        shared.down("the connection closed (the server crashed or exited)".into());
                    }
                }
            }
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = MIN_BACKOFF;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
