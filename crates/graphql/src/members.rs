//! Members of the active organization, for owners and admins: the
//! `members` query, `addMember`, `updateMember` and `removeMember`. A
//! change of membership is recorded as [`Committed::MembershipChanged`] so
//! that the server drops what it cached of the member once it commits.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, InputObject, Object, Result};
use strata_domain::UserId;
use strata_persistence::repo::members;

use crate::args::{client_ids, parse_id};
use crate::error::{ErrorCode, domain_error};
use crate::organization::{Membership, Role};
use crate::pagination::Paging;
use crate::pagination::{Cursor, Totals, TotalsKind, at, connection, page_request};
use crate::savepoint::in_savepoint;
use crate::session::Committed;
use crate::state::RequestState;

/// Members, Relay style.
pub type MembershipConnection = Connection<Cursor, Membership, Totals, EmptyFields>;

/// Resolves the members connection (oldest first).
pub async fn membership_connection(
    ctx: &Context<'_>,
    paging: Paging,
) -> Result<MembershipConnection> {
    let page = page_request(&paging)?;
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.read_tx().await?;
    let result = strata_persistence::repo::members::list(tx, &page)
        .await
        .map_err(domain_error)?;
    Ok(connection(
        &paging,
        result,
        TotalsKind::Members,
        |m| at(m.created_at, m.user_id.as_uuid()),
        |m| Membership::from(&m),
    ))
}

/// Input of `addMember`.
#[derive(InputObject, Debug)]
pub struct AddMemberInput {
    /// The user to add.
    pub user_id: ID,
    /// Their role.
    pub role: Role,
    /// The agency's clients they may see: required for an account manager;
    /// for a strategist or a viewer, limits them to these (all clients
    /// when omitted).
    pub client_ids: Option<Vec<ID>>,
}

/// Input of `updateMember`; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdateMemberInput {
    /// The member.
    pub user_id: ID,
    /// New role.
    pub role: Option<Role>,
    /// The agency's clients they may see, replacing the current ones (an
    /// account manager, a strategist or a viewer; an empty list gives a
    /// strategist or a viewer every client again). Omitted, the current
    /// ones stay.
    pub client_ids: Option<Vec<ID>>,
}

/// Member queries.
#[derive(Debug, Default)]
pub struct MemberQuery;

#[Object]
impl MemberQuery {
    /// Members of the active organization, oldest first (owners and
    /// admins).
    #[graphql(
        complexity = "crate::pagination::list_cost(first, last, child_complexity)",
        guard = r#"crate::guard::ActionGuard(strata_domain::Action::ListMembers)"#
    )]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<MembershipConnection> {
        membership_connection(ctx, Paging::new(first, after, last, before)).await
    }
}

/// `addMember`, a part of its own: the schema lists it among the first
/// mutations, and the other member mutations later.
#[derive(Debug, Default)]
pub struct AddMemberMutation;

#[Object]
impl AddMemberMutation {
    /// Adds a member to the active organization (OWNER/ADMIN).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::AddMember)"#)]
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> Result<Membership> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let user: UserId = parse_id("userId", &input.user_id)?;
        let client_ids = client_ids(input.client_ids)?.unwrap_or_default();
        let tx = state.write_tx().await?;
        let m = in_savepoint(tx, members::add(tx, user, input.role.into(), &client_ids)).await?;
        state.record(Committed::MembershipChanged(user));
        Ok(Membership::from(&m))
    }
}

/// Changes to members.
#[derive(Debug, Default)]
pub struct MemberMutation;

#[Object]
impl MemberMutation {
    /// Changes a member's role or client assignments (OWNER/ADMIN).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::UpdateMember)"#)]
    async fn update_member(
        &self,
        ctx: &Context<'_>,
        input: UpdateMemberInput,
    ) -> Result<Membership> {
        let user: UserId = parse_id("userId", &input.user_id)?;
        let assigned = client_ids(input.client_ids)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        let m = in_savepoint(
            tx,
            members::update(tx, user, input.role.map(Into::into), assigned.as_deref()),
        )
        .await?;
        state.record(Committed::MembershipChanged(user));
        Ok(Membership::from(&m))
    }

    /// The signed-in user leaves the active organization; returns its id.
    /// The last owner cannot leave (make another member an owner first).
    async fn leave_organization(&self, ctx: &Context<'_>) -> Result<ID> {
        let state = ctx.data::<RequestState>()?;
        let tenant = state.tenant()?;
        let user = state.user_id().ok_or_else(|| {
            ErrorCode::Forbidden.error(strata_domain::Action::LeaveOrganization.refusal())
        })?;
        let org = tenant.org_id();
        if tenant.role() == strata_domain::Role::Owner {
            let tx = state.write_tx().await?;
            in_savepoint(tx, members::leave_as_owner(tx)).await?;
            state.record(Committed::MembershipChanged(user));
        } else {
            strata_persistence::context::leave(state.db(), user, org, state.request_id())
                .await
                .map_err(domain_error)?;
            state.record_durable(Committed::MembershipChanged(user));
        }
        Ok(ID(org.to_string()))
    }

    /// Deletes the signed-in user's account: their memberships end
    /// everywhere and their e-mail and name are removed; audit rows keep
    /// their id as a pseudonym, and every token of theirs issued until now
    /// is refused. The last owner of an organization must first make
    /// another member an owner (or delete the organization). Returns the
    /// user's id.
    async fn delete_account(&self, ctx: &Context<'_>) -> Result<ID> {
        let state = ctx.data::<RequestState>()?;
        let user = state.user_id().ok_or_else(|| {
            ErrorCode::Forbidden.error(strata_domain::Action::DeleteAccount.refusal())
        })?;
        // Whatever of it committed is told to the rest of the server, even
        // when a later step fails.
        state.record_durable(Committed::MembershipChanged(user));
        state.record_durable(Committed::SessionsRevoked(user));
        strata_persistence::context::delete_account(state.db(), user, state.request_id())
            .await
            .map_err(domain_error)?;
        Ok(ID(user.to_string()))
    }

    /// Signs a user out everywhere: every token of theirs issued until now
    /// is refused from the next request on, and their open subscriptions
    /// close. A user may name themself (every organization); an OWNER or
    /// ADMIN may name a member (this organization). Returns the user's id.
    async fn revoke_sessions(&self, ctx: &Context<'_>, user_id: ID) -> Result<ID> {
        let state = ctx.data::<RequestState>()?;
        let caller = state.user_id().ok_or_else(|| {
            ErrorCode::Forbidden.error(strata_domain::Action::RevokeSessions.refusal())
        })?;
        let user: UserId = parse_id("userId", &user_id)?;
        if user == caller {
            let org = state.context().map(|c| c.org_id());
            strata_persistence::context::revoke_own_sessions(
                state.db(),
                user,
                org,
                state.request_id(),
            )
            .await
            .map_err(domain_error)?;
            state.record_durable(Committed::SessionsRevoked(user));
        } else {
            state.tenant()?;
            let tx = state.write_tx().await?;
            in_savepoint(tx, members::revoke_sessions(tx, user)).await?;
            state.record(Committed::SessionsRevoked(user));
        }
        Ok(user_id)
    }

    /// Removes a member from the organization (OWNER/ADMIN); returns the
    /// user's id.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::RemoveMember)"#)]
    async fn remove_member(&self, ctx: &Context<'_>, user_id: ID) -> Result<ID> {
        let user: UserId = parse_id("userId", &user_id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        in_savepoint(tx, members::remove(tx, user)).await?;
        state.record(Committed::MembershipChanged(user));
        Ok(user_id)
    }
}
