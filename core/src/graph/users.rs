//! `GET /users` (v1.0), paged with `@odata.nextLink`: the user list the CLI's export walks.

use reqwest::Method;
use serde::Deserialize;

use crate::graph::client::{Api, GraphClient, Target};
use crate::graph::error::GraphError;

/// Most users per page Graph returns (`$top`).
pub const MAX_USERS_PAGE_SIZE: u32 = 999;

/// One user of the listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

/// One page and where the next one is (a path after `/v1.0/`, or `None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersPage {
    pub users: Vec<DirectoryUser>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct PageBody<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

impl GraphClient {
    /// One page of a paged collection at `path` (`what` names it in errors): its rows, and the
    /// path of the next page (`@odata.nextLink` made relative to v1.0), if any.
    pub(crate) async fn get_page<T: serde::de::DeserializeOwned>(
        &self,
        path: String,
        what: &str,
    ) -> Result<(Vec<T>, Option<String>), GraphError> {
        let body = self
            .send(Method::GET, Api::V1, path, None, Target::User)
            .await?
            .ok_or_else(|| GraphError::InvalidResponse(format!("{what}: empty body")))?;
        let page: PageBody<T> = serde_json::from_value(body)
            .map_err(|e| GraphError::InvalidResponse(format!("{what}: {e}")))?;
        let next = match page.next_link {
            None => None,
            Some(link) => Some(self.relative_v1_path(&link)?),
        };
        Ok((page.value, next))
    }
}

impl GraphClient {
    /// The first page of at most `top` users (`next = None`; `top` is kept within
    /// 1..=[`MAX_USERS_PAGE_SIZE`]), or the page at `next` from an earlier [`UsersPage`].
    pub async fn list_users_page(
        &self,
        next: Option<&str>,
        top: u32,
    ) -> Result<UsersPage, GraphError> {
        let path = match next {
            Some(p) => p.to_string(),
            None => format!(
                "users?$select=id,userPrincipalName&$top={}",
                top.clamp(1, MAX_USERS_PAGE_SIZE)
            ),
        };
        let (users, next) = self.get_page(path, "users").await?;
        Ok(UsersPage { users, next })
    }

    /// One user by UPN or object id (`GET /users/{id}?$select=id,userPrincipalName`).
    pub async fn get_user(&self, user: &str) -> Result<DirectoryUser, GraphError> {
        let path = format!(
            "users/{}?$select=id,userPrincipalName",
            crate::graph::client::encode_user_segment(user)?
        );
        let body = self
            .send(Method::GET, Api::V1, path, None, Target::User)
            .await?
            .ok_or_else(|| GraphError::InvalidResponse("user: empty body".into()))?;
        serde_json::from_value(body).map_err(|e| GraphError::InvalidResponse(format!("user: {e}")))
    }

    /// Every user of a group, nested groups included
    /// (`GET /groups/{id}/transitiveMembers/microsoft.graph.user`, paged). 404: no such group
    /// ([`GraphError::UserNotFound`], as Graph words it).
    pub async fn group_users(&self, group: &str) -> Result<Vec<DirectoryUser>, GraphError> {
        let mut users = Vec::new();
        let mut path = format!(
            "groups/{}/transitiveMembers/microsoft.graph.user?$select=id,userPrincipalName&$top={MAX_USERS_PAGE_SIZE}",
            crate::graph::client::encode_user_segment(group)?
        );
        loop {
            let (page, next) = self.get_page(path, "group members").await?;
            users.extend(page);
            match next {
                Some(p) => path = p,
                None => return Ok(users),
            }
        }
    }

    /// `@odata.nextLink` is absolute; only links to this client's Graph `/v1.0/` are followed.
    pub(crate) fn relative_v1_path(&self, link: &str) -> Result<String, GraphError> {
        let prefix = format!("{}/v1.0/", self.settings().graph_base_url);
        link.strip_prefix(&prefix)
            .map(str::to_string)
            .ok_or_else(|| {
                GraphError::InvalidResponse(format!("@odata.nextLink does not start with {prefix}"))
            })
    }

    /// How many users the tenant has (`GET /users/$count` with `ConsistencyLevel: eventual`,
    /// which Graph requires for `$count`: https://learn.microsoft.com/en-us/graph/aad-advanced-queries;
    /// the answer is the number as text, https://learn.microsoft.com/en-us/graph/api/user-list).
    pub async fn count_users(&self) -> Result<u64, GraphError> {
        let body = self
            .send_with_headers(
                Method::GET,
                Api::V1,
                "users/$count".to_string(),
                None,
                Target::User,
                &[("ConsistencyLevel", "eventual")],
            )
            .await?;
        body.as_ref()
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
            .ok_or_else(|| GraphError::InvalidResponse("users/$count: not a number".into()))
    }
}
