/** The Imports page of an entity (being built: replaced by its full page in this change). */
import type { ConsolePage } from "../console-page.js";
import { sendPage } from "../console-page.js";
import { html } from "../html.js";

const importsPage: ConsolePage = {
  nav: { label: "Imports", path: "imports" },
  register(app) {
    app.get<{ Params: { entity: string } }>("/e/:entity/imports", async (request, reply) => {
      sendPage(request, reply, {
        title: "Imports",
        entity: request.params.entity,
        body: html`<p class="empty">Not built yet.</p>`,
      });
    });
  },
};

export default importsPage;
