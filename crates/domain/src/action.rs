//! The table of operations: for each operation a caller may be refused,
//! the permission it needs, the message it is refused with and the name its
//! audit rows carry. The GraphQL guards, the repositories' own checks, the
//! audit rows and the tests' matrix all read this one table, so that no
//! operation's words are written twice.

use crate::context::TenantContext;
use crate::error::DomainError;

/// What an operation needs of the caller's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Any signed-in user (not an API key).
    User,
    /// May change content: not a VIEWER, not a read-only API key.
    Write,
    /// May administer the organization: an OWNER or ADMIN user.
    Administer,
    /// Owns the organization: an OWNER user.
    Own,
}

macro_rules! actions {
    ($( $(#[$doc:meta])* $variant:ident => ($permission:ident, $refusal:literal, $audit:expr) ),* $(,)?) => {
        /// An operation of the API that a caller may be refused.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $( $(#[$doc])* $variant, )*
        }

        impl Action {
            /// Every operation, in the order of the table.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// What the operation needs.
            pub const fn permission(self) -> Permission {
                match self { $(Action::$variant => Permission::$permission,)* }
            }

            /// The message the operation is refused with (`FORBIDDEN`).
            pub const fn refusal(self) -> &'static str {
                match self { $(Action::$variant => $refusal,)* }
            }

            /// The operation named in its audit rows (the GraphQL field),
            /// or `None` for a read, which writes none.
            pub const fn audit_name(self) -> Option<&'static str> {
                match self { $(Action::$variant => $audit,)* }
            }
        }
    };
}

actions! {
    /// `createOrganization`.
    CreateOrganization => (User, "only a user can create an organization", Some("createOrganization")),
    /// `deleteOrganization`.
    DeleteOrganization => (Own, "only owners can delete the organization", Some("deleteOrganization")),
    /// `updateOrganization`.
    UpdateOrganization => (Administer, "only owners and admins can change the organization", Some("updateOrganization")),
    /// `addMember`.
    AddMember => (Administer, "only owners and admins can add members", Some("addMember")),
    /// `updateMember`.
    UpdateMember => (Administer, "only owners and admins can change members", Some("updateMember")),
    /// `removeMember`.
    RemoveMember => (Administer, "only owners and admins can remove members", Some("removeMember")),
    /// `members`.
    ListMembers => (Administer, "only owners and admins can list members", None),
    /// `inviteMember`.
    InviteMember => (Administer, "only owners and admins can invite members", Some("inviteMember")),
    /// `invitations`.
    ListInvitations => (Administer, "only owners and admins can list invitations", None),
    /// `revokeInvitation`.
    RevokeInvitation => (Administer, "only owners and admins can revoke invitations", Some("revokeInvitation")),
    /// `acceptInvitation` (and the acceptance on a first request).
    AcceptInvitation => (User, "only a user can accept an invitation", Some("acceptInvitation")),
    /// `leaveOrganization`.
    LeaveOrganization => (User, "only a member can leave an organization", Some("leaveOrganization")),
    /// The retention sweep's deletion of an organization's old runs (the
    /// server's own; no caller is ever refused it).
    RetentionSweep => (Write, "only the server sweeps old runs", Some("retentionSweep")),
    /// `deleteAccount`: the signed-in user's personal data and
    /// memberships.
    DeleteAccount => (User, "only a signed-in user can delete their account", Some("deleteAccount")),
    /// `revokeSessions`: a user's own, or a member's (owners and admins,
    /// checked by the repository).
    RevokeSessions => (User, "only a user can revoke sessions", Some("revokeSessions")),
    /// `createClient`.
    CreateClient => (Administer, "only owners and admins can create clients", Some("createClient")),
    /// `updateClient`.
    UpdateClient => (Administer, "only owners and admins can change clients", Some("updateClient")),
    /// `archiveClient`.
    ArchiveClient => (Administer, "only owners and admins can change clients", Some("archiveClient")),
    /// `restoreClient`.
    RestoreClient => (Administer, "only owners and admins can change clients", Some("restoreClient")),
    /// `deleteClient`.
    DeleteClient => (Administer, "only owners and admins can delete clients", Some("deleteClient")),
    /// `exportClient`.
    ExportClient => (Administer, "only owners and admins can export a client's data", Some("exportClient")),
    /// `exportOrganization`.
    ExportOrganization => (Administer, "only owners and admins can export the organization's data", Some("exportOrganization")),
    /// `dataExport`, the query and the subscription.
    ReadExport => (Administer, "only owners and admins can read data exports", None),
    /// `GET /exports/{id}`: the file of an export, downloaded.
    DownloadExport => (Administer, "only owners and admins can download data exports", Some("downloadExport")),
    /// `createCampaign`.
    CreateCampaign => (Write, "this role cannot create campaigns", Some("createCampaign")),
    /// `updateCampaign`.
    UpdateCampaign => (Write, "this role cannot change campaigns", Some("updateCampaign")),
    /// `deleteCampaign`.
    DeleteCampaign => (Write, "this role cannot delete campaigns", Some("deleteCampaign")),
    /// `saveBrandGuidelines`.
    SaveBrandGuidelines => (Write, "this role cannot change brand guidelines", Some("saveBrandGuidelines")),
    /// `createPersona`.
    CreatePersona => (Write, "this role cannot create personas", Some("createPersona")),
    /// `updatePersona`.
    UpdatePersona => (Write, "this role cannot change personas", Some("updatePersona")),
    /// `deletePersona`.
    DeletePersona => (Write, "this role cannot delete personas", Some("deletePersona")),
    /// `runAgent`.
    RunAgent => (Write, "this role cannot run agents", Some("runAgent")),
    /// `cancelAgentRun`.
    CancelAgentRun => (Write, "this role cannot cancel agent runs", Some("cancelAgentRun")),
    /// `createApiKey`.
    CreateApiKey => (Administer, "only owners and admins can create API keys", Some("createApiKey")),
    /// `apiKeys`.
    ListApiKeys => (Administer, "only owners and admins can list API keys", None),
    /// `revokeApiKey`.
    RevokeApiKey => (Administer, "only owners and admins can revoke API keys", Some("revokeApiKey")),
    /// `rotateApiKey`.
    RotateApiKey => (Administer, "only owners and admins can rotate API keys", Some("rotateApiKey")),
    /// `auditLog`.
    ReadAuditLog => (Administer, "only owners and admins can read the audit log", None),
}

impl Action {
    /// Whether `ctx` may perform the operation.
    pub fn allows(self, ctx: &TenantContext) -> bool {
        match self.permission() {
            Permission::User => ctx.actor().user_id().is_some(),
            Permission::Write => ctx.can_write(),
            Permission::Administer => ctx.can_administer(),
            Permission::Own => ctx.can_administer() && ctx.role() == crate::Role::Owner,
        }
    }

    /// `Ok` when `ctx` may perform the operation, else `FORBIDDEN` with its
    /// refusal.
    pub fn check(self, ctx: &TenantContext) -> Result<(), DomainError> {
        if self.allows(ctx) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(self.refusal()))
        }
    }

    /// The operation whose audit name is `name`.
    pub fn by_audit_name(name: &str) -> Option<Action> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.audit_name() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_names_are_unique_and_every_refusal_says_something() {
        let mut names: Vec<_> = Action::ALL.iter().filter_map(|a| a.audit_name()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(Action::ALL.iter().all(|a| a.refusal().len() > 10));
        assert_eq!(Action::by_audit_name("runAgent"), Some(Action::RunAgent));
    }
}
