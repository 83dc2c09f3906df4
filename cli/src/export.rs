//! `export`: the current phone and email methods of listed users, or of every user.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

use futures::stream::{self, StreamExt};
use mfa_preload_core::graph::{Feature, GraphClient, GraphError, PhoneType};

use crate::args::{GraphArgs, InputArgs};
use crate::connect::{graph_failure, Session};
use crate::input;
use crate::Failure;
use mfa_preload_core::results::SafeCsv;

pub const EXPORT_HEADER: [&str; 7] = [
    "user",
    "mobile",
    "alternateMobile",
    "office",
    "email",
    "hasPhoneMethod",
    "error",
];

pub struct Options {
    pub users: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// `--map` and `--default-country` for the users file (its `file` is not used).
    pub input: InputArgs,
    pub concurrency: u16,
    pub page_size: u32,
}

#[derive(Default)]
struct Exported {
    mobile: Option<String>,
    alternate: Option<String>,
    office: Option<String>,
    email: Option<String>,
}

async fn methods_of(client: &GraphClient, user: &str) -> Result<Exported, GraphError> {
    let phones = client.list_phone_methods(user).await?;
    let emails = client.list_email_methods(user).await?;
    let mut e = Exported::default();
    for p in phones {
        match p.kind() {
            Some(PhoneType::Mobile) => e.mobile = p.phone_number,
            Some(PhoneType::AlternateMobile) => e.alternate = p.phone_number,
            Some(PhoneType::Office) => e.office = p.phone_number,
            None => {}
        }
    }
    e.email = emails.into_iter().find_map(|m| m.email_address);
    Ok(e)
}

/// Every user (UPN, or the object id when there is none), page by page.
async fn all_users(client: &GraphClient, page_size: u32) -> Result<Vec<String>, Failure> {
    let mut users = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_users_page(next.as_deref(), page_size)
            .await
            .map_err(|e| graph_failure("listing users", e))?;
        users.extend(
            page.users
                .into_iter()
                .map(|u| u.user_principal_name.unwrap_or(u.id)),
        );
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok(users),
        }
    }
}

pub async fn run(graph: &GraphArgs, opts: Options) -> Result<u8, Failure> {
    let (listed, input) = match &opts.users {
        Some(path) => {
            let (settings, mapping) = input::options(&opts.input)?;
            let input = input::read(path, &settings, &mapping).await?;
            let mut seen = HashSet::new();
            let mut users = Vec::new();
            for r in &input.rows {
                match mfa_preload_core::user::validate_user(&r.user) {
                    Ok(u) => {
                        if seen.insert(mfa_preload_core::user::user_key(&u)) {
                            users.push(u);
                        }
                    }
                    Err(e) => eprintln!("row {}: skipped: {e}", r.row),
                }
            }
            (Some(users), Some(input))
        }
        None => (None, None),
    };
    let seed: Vec<_> = input.iter().flat_map(|i| i.valid()).collect();
    // Listing every user needs User.Read.All on top of reading the methods.
    let mut needed = vec![Feature::PhoneMethodsRead, Feature::EmailMethodsRead];
    if listed.is_none() {
        needed.push(Feature::ListUsers);
    }
    let session = Session::open(graph, &seed, &needed).await?;
    let users = match listed {
        Some(u) => u,
        None => all_users(&session.client, opts.page_size).await?,
    };
    let client = session.client.clone();
    let rows: Vec<(String, Result<Exported, GraphError>)> = stream::iter(users)
        .map(|u| {
            let client = client.clone();
            async move {
                let r = methods_of(&client, &u).await;
                (u, r)
            }
        })
        .buffered(usize::from(opts.concurrency))
        .collect()
        .await;
    session.close().await?;
    if let Some(f) = rows
        .iter()
        .find_map(|(_, r)| r.as_ref().err().and_then(GraphError::configuration))
    {
        return Err(Failure::Configuration(f.clone()));
    }

    let sink: Box<dyn Write> = match &opts.out {
        // The export holds every user's phone numbers: readable by the owner only.
        Some(p) => Box::new(std::io::BufWriter::new(
            crate::results::create_private(p).map_err(|e| Failure::io(p, e))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let target = opts
        .out
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "standard output".into());
    let err = |e: csv::Error| Failure::Usage(format!("writing {target}: {e}"));
    let mut w = SafeCsv::new(sink);
    w.record(EXPORT_HEADER).map_err(err)?;
    let (mut with_phone, mut failed) = (0usize, 0usize);
    for (user, r) in &rows {
        let cells = match r {
            Ok(e) => {
                let has = e.mobile.is_some() || e.alternate.is_some() || e.office.is_some();
                with_phone += usize::from(has);
                [
                    user.clone(),
                    e.mobile.clone().unwrap_or_default(),
                    e.alternate.clone().unwrap_or_default(),
                    e.office.clone().unwrap_or_default(),
                    e.email.clone().unwrap_or_default(),
                    has.to_string(),
                    String::new(),
                ]
            }
            Err(e) => {
                failed += 1;
                [
                    user.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("{}: {e}", e.reason()),
                ]
            }
        };
        w.record(cells).map_err(err)?;
    }
    w.flush()
        .map_err(|e| Failure::Usage(format!("writing {target}: {e}")))?;
    eprintln!(
        "exported {} users to {target} ({with_phone} with a phone method, {failed} failed)",
        rows.len()
    );
    Ok(if failed > 0 { 1 } else { 0 })
}
