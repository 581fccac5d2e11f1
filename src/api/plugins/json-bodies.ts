/**
 * Request bodies are JSON (a route module that takes files adds its own parser): text/plain gets
 * 415 rather than reaching a handler as a string.
 */
import type { FastifyInstance } from "fastify";
import { installJsonParser } from "../json-body.js";

/** Methods whose requests carry no body: an empty JSON body on them is no body at all. */
const BODYLESS_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "DELETE", "OPTIONS"]);

export function registerJsonBodies(app: FastifyInstance): void {
  app.removeContentTypeParser("text/plain");
  // Many HTTP clients send `Content-Type: application/json` on every call, DELETE and GET included,
  // with no body. Those methods take no body, so an empty one is no body rather than 400 "the
  // body is empty"; every other body goes through Fastify's own JSON parser (which refuses
  // __proto__ and constructor keys).
  installJsonParser(app, (method) => BODYLESS_METHODS.has(method));
}
