// PostGraphile 5 over the benchmark database, configured like Strata:
// every request runs in a transaction that switches to the runtime role
// (app_sme or app_agency) and sets the same app.* settings the RLS helpers
// read, so the same policies filter every row.
import { createServer } from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";

const secret = process.env.PEER_JWT_SECRET;
const port = Number(process.env.PEER_PORT || 5678);
const roles = new Set(["app_sme", "app_agency"]);

// Verifies an HS256 token and returns its claims, or null.
function claims(req) {
  const m = /^Bearer (.+)$/.exec(req?.headers?.authorization ?? "");
  if (!m) return null;
  const [head, body, sig] = m[1].split(".");
  if (!sig) return null;
  const want = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  if (want.length !== sig.length || !timingSafeEqual(Buffer.from(want), Buffer.from(sig))) {
    return null;
  }
  const c = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  if (typeof c.exp !== "number" || c.exp < Date.now() / 1000 || !roles.has(c.role)) return null;
  return c;
}

const preset = {
  extends: [PostGraphileAmberPreset],
  // Conditions and orderings on columns that lead no index (e.g.
  // outputs.status) are otherwise hidden.
  disablePlugins: ["PgIndexBehaviorsPlugin"],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public", "tenant_b"],
      poolConfig: { max: Number(process.env.PEER_POOL || 16) },
      pgSettings(requestContext) {
        const c = claims(requestContext.node?.req);
        if (!c) {
          // No context: the runtime role sees zero rows.
          return { role: "app_sme" };
        }
        return {
          role: c.role,
          "app.org_id": c.org_id,
          "app.user_id": c.sub,
          "app.client_ids": "{}",
          "app.all_clients": "true",
          "app.can_write": "true",
          "app.api_key_hash": "",
          "app.request_id": "",
        };
      },
    }),
  ],
  grafserv: { port, host: "127.0.0.1", graphqlPath: "/graphql", watch: false, graphiql: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (e) => {
  console.error(e);
  process.exit(1);
});
await serv.addTo(server);
// Build the schema before accepting connections.
await pgl.getSchemaResult();
server.listen(port, "127.0.0.1", () => console.log(`postgraphile listening on ${port}`));
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    server.close();
    await pgl.release();
    process.exit(0);
  });
}
