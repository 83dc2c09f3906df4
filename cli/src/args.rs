//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Bulk pre-registration of Entra ID MFA/SSPR phone and email methods through Microsoft Graph.
#[derive(Debug, Parser)]
#[command(name = "mfa-preload", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub graph: GraphArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate and normalise a file without calling Graph; write the rejected rows to a CSV.
    Check {
        #[command(flatten)]
        input: InputArgs,
        /// Where the rejected rows go (default: FILE-stem.rejects.csv in the current directory).
        #[arg(long, value_name = "PATH")]
        rejects: Option<PathBuf>,
    },
    /// Show, per user, the writes `apply` would make (reads only).
    Plan {
        #[command(flatten)]
        input: InputArgs,
        /// Also write the plan as CSV.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Make the changes in Graph; one results row per input row.
    Apply {
        #[command(flatten)]
        input: InputArgs,
        /// Results CSV (default: FILE-stem.results.csv in the current directory).
        #[arg(long, value_name = "PATH", conflicts_with = "resume")]
        results: Option<PathBuf>,
        /// Continue an earlier, interrupted run: rows already in RESULTS are skipped (rows that
        /// failed transiently are tried again) and the rest are appended to it.
        #[arg(long, value_name = "RESULTS")]
        resume: Option<PathBuf>,
        /// Replace an existing results file (and passes file).
        #[arg(long)]
        overwrite: bool,
        /// Where the Temporary Access Passes the run issues go (default: FILE-stem.passes.csv
        /// in the current directory): created readable by its owner only; the one place a pass
        /// is written.
        #[arg(long, value_name = "PATH")]
        passes: Option<PathBuf>,
        /// Also print the passes issued on the terminal at the end.
        #[arg(long)]
        show_passes: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Check the set-up against the tenant before a run: credentials, certificate dates, token,
    /// permissions for the file's columns, optionally one user. Exit 1 when a check fails.
    Doctor {
        /// The input file whose columns say which permissions are needed (default: all the
        /// product's features).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Read this user's methods (UPN or object id) as a last check.
        #[arg(long, value_name = "UPN")]
        user: Option<String>,
        /// Without --file: the features to check the permissions of, as for
        /// infra/register-entra-app.sh (phone, email, default-method, export, tap, readiness,
        /// readiness-per-user).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "phone,email",
            value_name = "LIST"
        )]
        features: Vec<String>,
        #[arg(long, env = "DEFAULT_COUNTRY", value_name = "CC", hide = true)]
        default_country: Option<String>,
        /// Extra header names of the file, as for the other commands.
        #[arg(long = "map", value_name = "THEIRS=OURS")]
        map: Vec<String>,
    },
    /// Gather the Temporary Access Passes the AWS deployment issued for an uploaded file (one
    /// pass file per row under passes/) into one passes file. Run it as the helpdesk principal
    /// (the stack's PassReaderPrincipalArn): only it may decrypt them.
    Passes {
        /// The uploaded file: s3://BUCKET/incoming/FILE.csv
        #[arg(value_name = "S3_URL")]
        file: String,
        /// Only this upload of the file (default: every upload whose passes are still kept).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// Where the passes go (default: FILE-stem.passes.csv in the current directory),
        /// created readable by you only.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Follow a job in the AWS deployment: progress, rate and ETA, counts by outcome and reason,
    /// from the job ledger (DynamoDB). Needs the stack's LedgerReaderPolicy (plus
    /// LedgerReconcilePolicy for --reconcile).
    Status {
        /// The uploaded file: s3://BUCKET/incoming/FILE.csv
        #[arg(
            value_name = "S3_URL",
            required_unless_present = "job",
            conflicts_with = "job"
        )]
        file: Option<String>,
        /// Another producer's job: PRODUCER/ID as in its messages.
        #[arg(long, value_name = "PRODUCER/ID")]
        job: Option<String>,
        /// Which upload of the file (default: the one its ingest report names).
        #[arg(long, value_name = "RUN")]
        run: Option<String>,
        /// The ledger table (the stack's JobLedgerTableName output).
        #[arg(long, env = "LEDGER_TABLE", value_name = "TABLE")]
        table: String,
        /// Download the results so far (one row per recorded row, the columns of apply's
        /// results file).
        #[arg(long, value_name = "PATH")]
        results: Option<PathBuf>,
        /// First read the DLQ without consuming it and record the rows SQS moved there by itself,
        /// so the job can complete.
        #[arg(long)]
        reconcile: bool,
        #[arg(long, env = "DLQ_URL", value_name = "URL")]
        dlq_url: Option<String>,
        /// Where a job that reconcile completes asks for its reports.
        #[arg(long, env = "CONTROL_QUEUE_URL", value_name = "URL")]
        control_queue_url: Option<String>,
        /// Refresh until the job is complete.
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
    },
    /// Who is ready for the end of SMS and voice (1 February 2027): every user classified by
    /// their methods (phishing_resistant, authenticator_app, phone_only, email_only, none), as a
    /// CSV, one HTML page and, with --tap-file, the users at risk as an input file for
    /// Temporary Access Pass issuance. Reads the registration report (AuditLog.Read.All) or each
    /// user's methods (User.Read.All, UserAuthenticationMethod.Read.All).
    Readiness(ReadinessArgs),
    /// Export the current phone and email methods of users as CSV.
    Export {
        /// A CSV with a user column (e.g. an input file); without it every user is listed.
        #[arg(long, value_name = "FILE")]
        users: Option<PathBuf>,
        /// Output CSV (default: standard output).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Extra header names of the users file, as for the other commands.
        #[arg(long = "map", value_name = "THEIRS=OURS")]
        map: Vec<String>,
        /// Country for national numbers in the users file (used to seed --simulate).
        #[arg(long, env = "DEFAULT_COUNTRY", value_name = "CC")]
        default_country: Option<String>,
        /// Users read at the same time.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
        /// Users per page when listing every user.
        #[arg(long, hide = true, default_value_t = 999, value_parser = clap::value_parser!(u32).range(1..=999))]
        page_size: u32,
    },
}

/// What `readiness` reads and writes.
#[derive(Debug, Args)]
pub struct ReadinessArgs {
    /// The per-user CSV (default: readiness.csv in the current directory).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// The HTML page (default: readiness.html in the current directory).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Also write the users at risk (phone_only, email_only, none) as an input CSV for
    /// Temporary Access Pass issuance (columns UPN, TapLifetimeMinutes).
    #[arg(long, value_name = "PATH")]
    pub tap_file: Option<PathBuf>,
    /// The TapLifetimeMinutes of every row of the TAP file.
    #[arg(long, default_value_t = 480, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(10..=43_200))]
    pub tap_lifetime_minutes: u32,
    /// Where the users are read from: auto (the faster for the tenant's size, see README
    /// "Passkey era"), report (the registration report) or per-user (each user's methods).
    #[arg(long, default_value = "auto", value_parser = ["auto", "report", "per-user"])]
    pub source: String,
    /// Users read at the same time on the per-user path.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// On the per-user path, also read each user's default and system-preferred methods
    /// (a second request per user; the report always has them).
    #[arg(long)]
    pub default_methods: bool,
    /// Users at risk printed after the summary.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub show: usize,
    /// Replace existing output files.
    #[arg(long)]
    pub overwrite: bool,
}

/// The input file and how to read it.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The CSV file: a header row (UPN, Mobile, OfficePhone, AlternateMobile, Email, ForcedUpdate, ...), `,` or `;`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// ISO 3166 alpha-2 country for national numbers (e.g. NL); unset: national numbers are refused.
    #[arg(long, env = "DEFAULT_COUNTRY", value_name = "CC")]
    pub default_country: Option<String>,
    /// Extra header name: "Their Header=ours" (a field name, an accepted header, or ignore). Repeatable.
    #[arg(long = "map", value_name = "THEIRS=OURS")]
    pub map: Vec<String>,
}

/// Tuning of commands that call Graph per user.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Users worked on at the same time (the Graph client also adapts to throttling).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Result rows printed after the summary.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub show: usize,
    /// Try a user Graph does not know again for this long before it is `user_not_found` (users
    /// created minutes ago can be missing from Graph for a while); 0: at once.
    #[arg(long, default_value_t = 0, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub user_not_found_retry: u64,
}

/// Where Graph is and who we are.
#[derive(Debug, Args)]
#[command(next_help_heading = "Graph connection (any command)")]
pub struct GraphArgs {
    /// The app credentials JSON (the worker's secret: tenantId, clientId, certificatePem +
    /// privateKeyPem, or pfxBase64 + pfxPassword).
    #[arg(long, global = true, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Directory (tenant) id, with --client-id, --certificate and --private-key.
    #[arg(long, global = true, value_name = "ID")]
    pub tenant_id: Option<String>,
    /// Application (client) id.
    #[arg(long, global = true, value_name = "ID")]
    pub client_id: Option<String>,
    /// The app certificate (PEM).
    #[arg(long, global = true, value_name = "PEM")]
    pub certificate: Option<PathBuf>,
    /// The certificate's private key (PEM, PKCS#8 or PKCS#1).
    #[arg(long, global = true, value_name = "PEM")]
    pub private_key: Option<PathBuf>,
    /// National cloud: global, usgov, usgovdod, china (GRAPH_BASE_URL / LOGIN_BASE_URL override).
    #[arg(long, global = true, env = "GRAPH_CLOUD", value_name = "CLOUD")]
    pub cloud: Option<String>,
    /// Run against an in-process Graph simulator seeded with the file's users (no real tenant).
    #[arg(long, global = true)]
    pub simulate: bool,
    /// Simulator state file: loaded if present (instead of seeding), saved at the end.
    #[arg(long, global = true, hide = true, value_name = "FILE")]
    pub simulate_state: Option<PathBuf>,
    /// Simulator latency per request.
    #[arg(
        long,
        global = true,
        hide = true,
        env = "MFA_PRELOAD_SIM_LATENCY_MS",
        value_name = "MS"
    )]
    pub sim_latency_ms: Option<u64>,
}
