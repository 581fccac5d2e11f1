/**
 * A route module: registers its routes on the app it is given (buildApp gives each module a plugin
 * context of its own, so a parser or hook it adds stays with its routes) with the API's deps.
 */
import type { AppDeps, HeraldApp } from "../app-deps.js";

export type RouteModule = (app: HeraldApp, deps: AppDeps) => Promise<void>;
