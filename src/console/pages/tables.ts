/** The Tables page of an entity (being built: replaced by its full page in this change). */
import type { ConsolePage } from "../console-page.js";
import { sendPage } from "../console-page.js";
import { html } from "../html.js";

const tablesPage: ConsolePage = {
  nav: { label: "Tables", path: "tables" },
  register(app) {
    app.get<{ Params: { entity: string } }>("/e/:entity/tables", async (request, reply) => {
      sendPage(request, reply, {
        title: "Tables",
        entity: request.params.entity,
        body: html`<p class="empty">Not built yet.</p>`,
      });
    });
  },
};

export default tablesPage;
