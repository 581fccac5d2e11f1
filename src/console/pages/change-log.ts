/** The Change log page of an entity (being built: replaced by its full page in this change). */
import type { ConsolePage } from "../console-page.js";
import { sendPage } from "../console-page.js";
import { html } from "../html.js";

const changeLogPage: ConsolePage = {
  nav: { label: "Change log", path: "change-log" },
  register(app) {
    app.get<{ Params: { entity: string } }>("/e/:entity/change-log", async (request, reply) => {
      sendPage(request, reply, {
        title: "Change log",
        entity: request.params.entity,
        body: html`<p class="empty">Not built yet.</p>`,
      });
    });
  },
};

export default changeLogPage;
