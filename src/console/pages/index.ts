/**
 * Every page of the console, in the order of an entity's navigation. A capability adds its page
 * as one file here (its routes and its navigation link) and one line below.
 */
import type { ConsolePage } from "../console-page.js";
import changeLogPage from "./change-log.js";
import entitiesPage from "./entities.js";
import exportsPage from "./exports.js";
import filesPage from "./files.js";
import importsPage from "./imports.js";
import scenariosPage from "./scenarios.js";
import subscriptionsPage from "./subscriptions.js";
import tablesPage from "./tables.js";

export const CONSOLE_PAGES: ConsolePage[] = [
  entitiesPage,
  tablesPage,
  subscriptionsPage,
  importsPage,
  filesPage,
  exportsPage,
  scenariosPage,
  changeLogPage,
];
