//! `graph-sim`: run the Microsoft Graph simulator by hand on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use graph_sim::{
    FaultConfig, FaultKind, GraphSim, SeedUser, SimConfig, SmsConflictAnswer, TapPolicy,
    ThrottleModel,
};
use tracing_subscriber::EnvFilter;

/// Simulates Microsoft Graph authentication phone/email methods and the token endpoint.
#[derive(Debug, Parser)]
#[command(name = "graph-sim", version)]
struct Args {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0, env = "GRAPH_SIM_PORT")]
    port: u16,
    /// Delay added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// How the budgets are counted: token-bucket (Graph's model) or sliding-window.
    #[arg(long, default_value = "token-bucket")]
    throttle_model: ThrottleModel,
    /// Never send `x-ms-throttle-limit-percentage` (field reports say Graph does not).
    #[arg(long)]
    no_limit_percentage_header: bool,
    /// Resource units per window (GET 1 RU, write 2 RU; 0 = unlimited).
    #[arg(long, default_value_t = 8000)]
    ru_per_window: u32,
    /// Resource-unit window, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    window_ms: u64,
    /// Writes per write window (0 = unlimited).
    #[arg(long, default_value_t = 3000)]
    writes_per_window: u32,
    /// Write window, in milliseconds.
    #[arg(long, default_value_t = 150_000)]
    write_window_ms: u64,
    /// Probability of an injected fault per Graph request.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Fault kinds to draw from: 429, 500, 503, timeout, drop, after-commit.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "429,500,503,timeout,drop"
    )]
    fault_kinds: Vec<FaultKind>,
    /// SMS sign-in policy: users it targets may use SMS sign-in, and get it on a new mobile.
    #[arg(long)]
    sms_sign_in_policy: bool,
    /// The users (UPN or object id) the SMS sign-in policy targets (default: all).
    #[arg(long, value_delimiter = ',', value_name = "USERS")]
    sms_policy_users: Vec<String>,
    /// How a mobile write whose number another user holds for SMS sign-in is answered: 409
    /// (`phoneNumberNotUnique`) or 201 (`smsSignInState: phoneNumberNotUnique`).
    #[arg(long, default_value = "409", value_parser = ["409", "201"])]
    sms_conflict_answer: String,
    /// Accept a POST without `Content-Length` (Graph answers 411).
    #[arg(long)]
    allow_missing_content_length: bool,
    /// Quote phone numbers in phone error texts (tests a client's log masking).
    #[arg(long)]
    echo_numbers_in_errors: bool,
    /// Application permissions granted to the registered apps (default: all the product uses).
    #[arg(long, value_delimiter = ',', value_name = "ROLES")]
    roles: Vec<String>,
    /// Any UPN exists (users are created on first use).
    #[arg(long)]
    auto_create_users: bool,
    /// Requests per report window to the registration report (Graph: 5 per 10 s; 0 = unlimited).
    #[arg(long, default_value_t = 5)]
    report_requests_per_window: u32,
    /// The registration report's window, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    report_window_ms: u64,
    /// The tenant has system-preferred MFA on.
    #[arg(long)]
    system_preferred_mfa: bool,
    /// The tenant has no Entra ID P1/P2: the registration report answers 403.
    #[arg(long)]
    no_premium_license: bool,
    /// The Temporary Access Pass method in the authentication methods policy.
    #[arg(long, default_value = "enabled", value_parser = ["enabled", "disabled"])]
    tap_policy: String,
    /// The policy's minimum and maximum pass lifetime in minutes, MIN-MAX (each 10 to 43200);
    /// the default lifetime (60) is brought into the range.
    #[arg(long, default_value = "60-480", value_name = "MIN-MAX", value_parser = parse_lifetime_range)]
    tap_lifetime_range: (u32, u32),
    /// The users (UPN or object id) the Temporary Access Pass policy targets (default: all).
    #[arg(long, value_delimiter = ',', value_name = "USERS")]
    tap_policy_users: Vec<String>,
    /// Register an app: TENANT:CLIENT_ID:CERTIFICATE_PEM_FILE (repeatable).
    #[arg(long, value_name = "TENANT:CLIENT:CERTFILE")]
    register: Vec<String>,
    /// Seed users from a JSON array of {upn, id?, mobile?, alternateMobile?, office?, email?,
    /// defaultMethod?, smsSignInEnabled?, methods?} (methods: fido2SecurityKey,
    /// passkeyAuthenticator, windowsHello, certificate, authenticator, softwareOath,
    /// temporaryAccessPass).
    #[arg(long, value_name = "USERS_JSON")]
    seed: Option<PathBuf>,
}

/// `MIN-MAX` minutes, as the policy allows them: "Value can be between 10 and 43200 minutes"
/// (https://learn.microsoft.com/en-us/graph/api/resources/temporaryaccesspassauthenticationmethodconfiguration).
fn parse_lifetime_range(s: &str) -> Result<(u32, u32), String> {
    let (min, max) = s
        .split_once('-')
        .ok_or_else(|| format!("'{s}': expected MIN-MAX, e.g. 60-480"))?;
    let num = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{s}': '{v}' is not a number of minutes"))
    };
    let (min, max) = (num(min)?, num(max)?);
    if !(10..=43_200).contains(&min) || !(10..=43_200).contains(&max) || min > max {
        return Err(format!("'{s}': need 10 <= MIN <= MAX <= 43200 minutes"));
    }
    Ok((min, max))
}

fn parse_registration(spec: &str) -> Result<(String, String, PathBuf), String> {
    let mut parts = spec.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(t), Some(c), Some(f)) if !t.is_empty() && !c.is_empty() && !f.is_empty() => {
            Ok((t.to_string(), c.to_string(), PathBuf::from(f)))
        }
        _ => Err(format!(
            "--register '{spec}': expected TENANT:CLIENT_ID:CERTIFICATE_PEM_FILE"
        )),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let cfg = SimConfig {
        latency: Duration::from_millis(args.latency_ms),
        throttle_model: args.throttle_model,
        limit_percentage_header: !args.no_limit_percentage_header,
        ru_per_window: args.ru_per_window,
        window: Duration::from_millis(args.window_ms),
        writes_per_window: args.writes_per_window,
        write_window: Duration::from_millis(args.write_window_ms),
        faults: FaultConfig::new(args.fault_rate, args.fault_kinds),
        sms_sign_in_policy: args.sms_sign_in_policy,
        sms_sign_in_policy_users: args.sms_policy_users.clone(),
        sms_conflict_answer: if args.sms_conflict_answer == "201" {
            SmsConflictAnswer::Accepted
        } else {
            SmsConflictAnswer::Conflict
        },
        require_content_length: !args.allow_missing_content_length,
        echo_numbers_in_errors: args.echo_numbers_in_errors,
        auto_create_users: args.auto_create_users,
        report_requests_per_window: args.report_requests_per_window,
        report_window: Duration::from_millis(args.report_window_ms),
        system_preferred_mfa: args.system_preferred_mfa,
        premium_license: !args.no_premium_license,
        tap_policy: {
            let (min, max) = args.tap_lifetime_range;
            let defaults = TapPolicy::default();
            TapPolicy {
                enabled: args.tap_policy == "enabled",
                default_lifetime: defaults.default_lifetime.clamp(min, max),
                min_lifetime: min,
                max_lifetime: max,
                included: (!args.tap_policy_users.is_empty())
                    .then(|| args.tap_policy_users.clone()),
                ..defaults
            }
        },
    };
    if !(0.0..=1.0).contains(&cfg.faults.rate) {
        return Err(format!(
            "--fault-rate {}: must be between 0 and 1",
            cfg.faults.rate
        ));
    }
    let mut apps = Vec::new();
    for spec in &args.register {
        let (tenant, client, file) = parse_registration(spec)?;
        let pem = std::fs::read_to_string(&file)
            .map_err(|e| format!("--register: cannot read {}: {e}", file.display()))?;
        apps.push((tenant, client, file, pem));
    }
    let sim = GraphSim::start_on(SocketAddr::from(([127, 0, 0, 1], args.port)), cfg)
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    for (tenant, client, file, pem) in &apps {
        sim.try_register_app(tenant, client, pem)
            .map_err(|e| format!("--register: {}: {e}", file.display()))?;
        if !args.roles.is_empty() {
            let roles: Vec<&str> = args.roles.iter().map(String::as_str).collect();
            sim.set_app_roles(tenant, client, &roles);
        }
        tracing::info!(%tenant, %client, "app registered");
    }
    if let Some(path) = &args.seed {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--seed: cannot read {}: {e}", path.display()))?;
        let users: Vec<SeedUser> =
            serde_json::from_str(&text).map_err(|e| format!("--seed: {}: {e}", path.display()))?;
        if let Some((i, _)) = users.iter().enumerate().find(|(_, u)| u.upn.is_empty()) {
            return Err(format!(
                "--seed: {}: user #{} has no upn",
                path.display(),
                i + 1
            ));
        }
        let n = users.len();
        sim.add_users(users);
        tracing::info!(users = n, "users seeded");
    }
    println!("{}", sim.base_url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    tracing::info!(stats = ?sim.stats(), "shutting down");
    sim.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graph-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
