//! Entities of the `public` schema: shared identities and SME content.

/// `public.organizations`.
pub mod organizations {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "organizations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(column_name = "type", column_type = "Text")]
        pub org_type: String,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        #[sea_orm(column_type = "Text")]
        pub slug: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub settings: Json,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub monthly_token_quota: Option<i64>,
        pub require_mfa: bool,
        pub retention_days: Option<i32>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `public.memberships`.
pub mod memberships {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "memberships")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub org_type: String,
        #[sea_orm(column_type = "Text")]
        pub role: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        #[sea_orm(column_type = "Text", nullable)]
        pub email: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub name: Option<String>,
        pub sessions_valid_after: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `public.campaigns` (SME campaigns).
pub mod campaigns {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "campaigns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub org_type: String,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub objective: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub status: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `public.brand_guidelines` (one set per SME).
pub mod brand_guidelines {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "brand_guidelines")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub org_type: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub content: Json,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `public.personas` (SME personas).
pub mod personas {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "personas")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub org_type: String,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub description: Option<String>,
        #[sea_orm(column_type = "JsonBinary")]
        pub attributes: Json,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `public.agent_outputs` (SME agent runs).
pub mod agent_outputs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "agent_outputs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub org_type: String,
        pub campaign_id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub agent: String,
        #[sea_orm(column_type = "Text")]
        pub status: String,
        #[sea_orm(column_type = "JsonBinary")]
        pub input: Json,
        #[sea_orm(column_type = "JsonBinary", nullable)]
        pub output: Option<Json>,
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        pub prompt_tokens: i32,
        pub completion_tokens: i32,
        pub created_by: Option<Uuid>,
        pub created_at: DateTimeUtc,
        pub started_at: Option<DateTimeUtc>,
        pub finished_at: Option<DateTimeUtc>,
        /// When the run's lease was last renewed.
        pub heartbeat_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `public.audit_log` (both tenant types).
pub mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub client_id: Option<Uuid>,
        pub actor_user_id: Option<Uuid>,
        pub actor_api_key_id: Option<Uuid>,
        #[sea_orm(column_type = "Text")]
        pub operation: String,
        #[sea_orm(column_type = "Text")]
        pub target_type: String,
        pub target_id: Option<Uuid>,
        #[sea_orm(column_type = "Text", nullable)]
        pub request_id: Option<String>,
        #[sea_orm(column_type = "JsonBinary")]
        pub details: Json,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
