//! Invitations by e-mail: `inviteMember`, `invitations` and
//! `revokeInvitation` for owners and admins, `acceptInvitation` for the
//! invited user (who also joins on their first request once their token
//! carries the invited address, verified).

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use strata_domain::InvitationId;
use strata_domain::model::{self, InvitationStatus as Status};
use strata_persistence::repo::invitations;

use crate::args::{client_ids, parse_id};
use crate::error::{ErrorCode, domain_error};
use crate::organization::Role;
use crate::pagination::{Cursor, Paging, Totals, TotalsKind, at, connection, page_request};
use crate::savepoint::in_savepoint;
use crate::session::Committed;
use crate::state::RequestState;

/// Where an invitation stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum InvitationStatus {
    /// May be accepted.
    Pending,
    /// Accepted: the invitee is a member.
    Accepted,
    /// Revoked by an owner or admin.
    Revoked,
    /// Not accepted in time.
    Expired,
}

impl From<Status> for InvitationStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => Self::Pending,
            Status::Accepted => Self::Accepted,
            Status::Revoked => Self::Revoked,
            Status::Expired => Self::Expired,
        }
    }
}

impl From<InvitationStatus> for Status {
    fn from(s: InvitationStatus) -> Self {
        match s {
            InvitationStatus::Pending => Self::Pending,
            InvitationStatus::Accepted => Self::Accepted,
            InvitationStatus::Revoked => Self::Revoked,
            InvitationStatus::Expired => Self::Expired,
        }
    }
}

/// An invitation to join the organization, by e-mail.
#[derive(Clone, Debug)]
pub struct Invitation(pub model::Invitation);

#[Object]
impl Invitation {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The invited address (lower case).
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// The role the invitee gets.
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    /// The clients the invitee is limited to (agencies).
    async fn client_ids(&self) -> Vec<ID> {
        self.0
            .client_ids
            .iter()
            .map(|c| ID(c.to_string()))
            .collect()
    }
    /// Where it stands now.
    async fn status(&self) -> InvitationStatus {
        self.0.status(Utc::now()).into()
    }
    /// Until when it may be accepted.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// The user who invited.
    async fn invited_by(&self) -> Option<ID> {
        self.0.invited_by.map(|u| ID(u.to_string()))
    }
    /// When it was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it was accepted, if it was.
    async fn accepted_at(&self) -> Option<DateTime<Utc>> {
        self.0.accepted_at
    }
}

/// Input of `inviteMember`.
#[derive(InputObject, Debug)]
pub struct InviteMemberInput {
    /// The address to invite; the invitee's token must carry it, verified.
    pub email: String,
    /// The role they get (not OWNER: owners are added with `addMember`).
    pub role: Role,
    /// The agency's clients they are limited to (an account manager needs
    /// some; a strategist or a viewer sees every client without).
    pub client_ids: Option<Vec<ID>>,
}

/// Invitations, Relay style.
pub type InvitationConnection = Connection<Cursor, Invitation, Totals, EmptyFields>;

/// Invitation queries.
#[derive(Debug, Default)]
pub struct InvitationQuery;

#[Object]
impl InvitationQuery {
    /// The active organization's invitations, newest first, all or those
    /// in `status` (OWNER/ADMIN).
    #[graphql(
        complexity = "crate::pagination::list_cost(first, last, child_complexity)",
        guard = r#"crate::guard::ActionGuard(strata_domain::Action::ListInvitations)"#
    )]
    async fn invitations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        status: Option<InvitationStatus>,
    ) -> Result<InvitationConnection> {
        let paging = Paging::new(first, after, last, before);
        let page = page_request(&paging)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        let status = status.map(Into::into);
        let result = invitations::list(tx, &page, status)
            .await
            .map_err(domain_error)?;
        Ok(connection(
            &paging,
            result,
            TotalsKind::Invitations(status),
            |i| at(i.created_at, i.id.as_uuid()),
            Invitation,
        ))
    }
}

/// Invitation mutations.
#[derive(Debug, Default)]
pub struct InvitationMutation;

#[Object]
impl InvitationMutation {
    /// Invites an e-mail address to the active organization (OWNER/ADMIN):
    /// a pending invitation, valid for a week.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::InviteMember)"#)]
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        input: InviteMemberInput,
    ) -> Result<Invitation> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let clients = client_ids(input.client_ids)?.unwrap_or_default();
        let tx = state.write_tx().await?;
        let created = in_savepoint(
            tx,
            invitations::create(tx, &input.email, input.role.into(), &clients),
        )
        .await?;
        Ok(Invitation(created))
    }

    /// Revokes a pending invitation of the active organization
    /// (OWNER/ADMIN); an accepted one stays as it is.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::RevokeInvitation)"#)]
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> Result<Invitation> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let id: InvitationId = parse_id("id", &id)?;
        let tx = state.write_tx().await?;
        Ok(Invitation(
            in_savepoint(tx, invitations::revoke(tx, id)).await?,
        ))
    }

    /// Accepts an invitation addressed to the signed-in user's verified
    /// e-mail: they become a member with its role and clients. Returns the
    /// organization's id; `NOT_FOUND` for any other invitation.
    async fn accept_invitation(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let state = ctx.data::<RequestState>()?;
        let user = state.user_id().ok_or_else(|| {
            ErrorCode::Forbidden.error(strata_domain::Action::AcceptInvitation.refusal())
        })?;
        let id: InvitationId = parse_id("id", &id)?;
        let credential = state.credential();
        let org = strata_persistence::context::accept_invitation(
            state.db(),
            user,
            &credential.identity(),
            id,
            state.request_id(),
        )
        .await
        .map_err(domain_error)?;
        state.record_durable(Committed::MembershipChanged(user));
        Ok(ID(org.to_string()))
    }
}
