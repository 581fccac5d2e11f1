/** `GET /auth/token` (SPEC §1). */
import { Type } from "typebox";
import type { RouteModule } from "./route-module.js";

const TokenResponse = Type.Object({
  accessToken: Type.String(),
  tokenType: Type.Literal("bearer"),
  expiresIn: Type.String(),
  scope: Type.String(),
  jti: Type.String(),
});

const authRoutes: RouteModule = async (app, deps) => {
  app.get(
    "/auth/token",
    {
      config: { public: true },
      schema: {
        tags: ["auth"],
        summary: "Trade an API key (raw, in the Authorization header) for a 15-minute bearer token",
        security: [],
        response: { 200: TokenResponse },
      },
    },
    async (request) => deps.authenticator.issueToken(request.headers.authorization),
  );
};
export default authRoutes;
