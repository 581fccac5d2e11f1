/**
 * Console sign-in: an API key traded for a session cookie (SPEC §8). The cookie holds a random
 * token whose hash names a row of `console_sessions`; the row holds the key's id and the CSRF token
 * that every write must echo. The cookie is `HttpOnly` and `SameSite=Strict`, `Secure` when the
 * console is served over HTTPS, and scoped to `/ui`.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { hashSecret } from "../api/api-key-secrets.js";
import type { Database } from "../storage/database.js";
import {
  deleteConsoleSession,
  deleteExpiredConsoleSessions,
  findConsoleSession,
  insertConsoleSession,
} from "../storage/console-session-repository.js";

export const SESSION_COOKIE = "herald_session";
/** A session lasts this long from sign-in, whatever is done with it. */
export const SESSION_TTL_SECONDS = 8 * 3600;

export interface ConsoleSession {
  apiKeyId: number;
  licenceId: number;
  csrfToken: string;
}

export async function openSession(
  db: Database,
  reply: FastifyReply,
  request: FastifyRequest,
  apiKeyId: number,
): Promise<void> {
  const token = randomBytes(32).toString("base64url");
  // Sessions past their time are removed here, at the one moment a new row is written.
  await deleteExpiredConsoleSessions(db);
  await insertConsoleSession(db, {
    tokenHash: hashSecret(token),
    apiKeyId,
    csrfToken: randomBytes(24).toString("base64url"),
    ttlSeconds: SESSION_TTL_SECONDS,
  });
  reply.header("set-cookie", sessionCookie(request, token, SESSION_TTL_SECONDS));
}

/** The session named by the request's cookie, or undefined when there is none or it ended. */
export async function findSession(
  db: Database,
  request: FastifyRequest,
): Promise<ConsoleSession | undefined> {
  const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
  if (!token) return undefined;
  const row = await findConsoleSession(db, hashSecret(token));
  return row && { apiKeyId: row.apiKeyId, licenceId: row.licenceId, csrfToken: row.csrfToken };
}

/** Ends the request's session (if any) and tells the browser to forget the cookie. */
export async function closeSession(
  db: Database,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
  if (token) await deleteConsoleSession(db, hashSecret(token));
  reply.header("set-cookie", sessionCookie(request, "", 0));
}

/** Whether the CSRF token sent with a write (form field or header) is the session's. */
export function csrfMatches(session: ConsoleSession, sent: string | undefined): boolean {
  if (!sent) return false;
  const expected = Buffer.from(session.csrfToken);
  const given = Buffer.from(sent);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function sessionCookie(request: FastifyRequest, token: string, maxAge: number): string {
  // Behind a TLS proxy the request arrives as plain HTTP with X-Forwarded-Proto; a client that
  // sends that header itself only gets a cookie its browser keeps off plain HTTP.
  const https = request.protocol === "https" || request.headers["x-forwarded-proto"] === "https";
  const secure = https ? "; Secure" : "";
  return `${SESSION_COOKIE}=${token}; Path=/ui; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure}`;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
