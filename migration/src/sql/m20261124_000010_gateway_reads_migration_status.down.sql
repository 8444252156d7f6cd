REVOKE SELECT ON TABLE seaql_migrations FROM strata_gateway;
