// A real Better Auth server for the MCP OAuth tests: email and password sign-in, the jwt plugin with its
// issuer set to the base URL, and @better-auth/mcp as the authorization server of the backend's /mcp
// resource, with dynamic client registration on. Configured by the environment; prints "ready PORT".
import http from "node:http";
import pg from "pg";
import { betterAuth } from "better-auth";
import { jwt } from "better-auth/plugins";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { mcp } from "@better-auth/mcp";

const { BASE_URL, MCP_RESOURCE, DATABASE_URL, AUTH_SECRET, PORT } = process.env;

const auth = betterAuth({
  baseURL: BASE_URL,
  secret: AUTH_SECRET,
  database: new pg.Pool({ connectionString: DATABASE_URL }),
  emailAndPassword: { enabled: true },
  plugins: [
    jwt({ jwt: { issuer: BASE_URL } }),
    mcp({
      resource: MCP_RESOURCE,
      loginPage: "/login",
      consentPage: "/consent",
      allowDynamicClientRegistration: true,
      allowUnauthenticatedClientRegistration: true,
    }),
  ],
});

const { runMigrations } = await getMigrations(auth.options);
await runMigrations();
// every path goes to Better Auth: it serves the RFC 8414 metadata at the root for an issuer without a path
const server = http.createServer(toNodeHandler(auth));
server.listen(Number(PORT), "127.0.0.1", () => console.log(`ready ${server.address().port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
