/**
 * A server-sent event stream (text/event-stream) on a hijacked reply, for htmx's SSE extension.
 * Fastify does not write the headers of a hijacked reply, so the ones the console's hook set (the
 * Content-Security-Policy, nosniff, no-store…) are carried over here by hand.
 */
import type { FastifyReply } from "fastify";
import type { OutgoingHttpHeaders } from "node:http";

export interface EventStream {
  readonly closed: boolean;
  /** One event; `data` may span lines (each becomes a `data:` line, joined again by the browser). */
  send(event: string, data: string): void;
  /** A comment line: keeps proxies and the browser from timing the connection out. */
  comment(text: string): void;
  /** Ends the response (once). */
  close(): void;
  /** Called once when the stream ends, by `close` or because the client went away. */
  onClose(listener: () => void): void;
}

export function openEventStream(reply: FastifyReply): EventStream {
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(reply.getHeaders()))
    if (value !== undefined) headers[name] = value;
  headers["content-type"] = "text/event-stream; charset=utf-8";
  headers["cache-control"] = "no-store";
  // A reverse proxy (nginx) must pass each event on at once rather than buffer the response.
  headers["x-accel-buffering"] = "no";
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, headers);
  res.flushHeaders();

  let closed = false;
  const listeners: (() => void)[] = [];
  const finish = () => {
    if (closed) return;
    closed = true;
    for (const listener of listeners.splice(0)) listener();
  };
  res.once("close", finish);
  res.once("error", finish);
  const write = (text: string) => {
    if (closed || res.writableEnded || res.destroyed) return;
    res.write(text);
  };
  return {
    get closed() {
      return closed;
    },
    send(event, data) {
      // A bare CR also ends a line for the browser's parser, so every line break is split on.
      const lines = data.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`);
      write(`event: ${event}\n${lines.join("")}\n`);
    },
    comment(text) {
      write(`: ${text.replace(/[\r\n]+/g, " ")}\n\n`);
    },
    close() {
      if (!res.writableEnded) res.end();
      finish();
    },
    onClose(listener) {
      if (closed) listener();
      else listeners.push(listener);
    },
  };
}
