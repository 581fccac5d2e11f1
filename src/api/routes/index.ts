/** Every route module of the API, registered in this order by `buildApp`. */
import apiKeyRoutes from "./api-key-routes.js";
import authRoutes from "./auth-routes.js";
import changeEventRoutes from "./change-event-routes.js";
import customActionRoutes from "./custom-action-routes.js";
import customTableRoutes from "./custom-table-routes.js";
import deliveryControlRoutes from "./delivery-control-routes.js";
import entityRoutes from "./entity-routes.js";
import etlRoutes from "./etl-routes.js";
import exportRoutes from "./export-routes.js";
import fileReferenceRoutes from "./file-reference-routes.js";
import importRoutes from "./import-routes.js";
import operationsRoutes from "./operations-routes.js";
import profileRoutes from "./profile-routes.js";
import profileTableRoutes from "./profile-table-routes.js";
import profileV5Routes from "./profile-v5-routes.js";
import recordRoutes from "./record-routes.js";
import scenarioRoutes from "./scenario-routes.js";
import scenarioRunRoutes from "./scenario-run-routes.js";
import subscriptionRoutes from "./subscription-routes.js";
import v4TableStructureRoutes from "./v4-table-structure-routes.js";
import type { RouteModule } from "./route-module.js";

export const ROUTE_MODULES: RouteModule[] = [
  operationsRoutes,
  authRoutes,
  entityRoutes,
  apiKeyRoutes,
  changeEventRoutes,
  subscriptionRoutes,
  deliveryControlRoutes,
  profileTableRoutes,
  customTableRoutes,
  v4TableStructureRoutes,
  profileRoutes,
  profileV5Routes,
  recordRoutes,
  importRoutes,
  etlRoutes,
  exportRoutes,
  fileReferenceRoutes,
  customActionRoutes,
  scenarioRoutes,
  scenarioRunRoutes,
];
