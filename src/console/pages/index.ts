/**
 * Every page of the console, in the order of an entity's navigation. A capability adds its page
 * as one file here (its routes and its navigation link) and one line below.
 */
import type { ConsolePage } from "../console-page.js";
import entitiesPage from "./entities.js";

export const CONSOLE_PAGES: ConsolePage[] = [entitiesPage];
