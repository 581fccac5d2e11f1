/** The Subscriptions page of an entity (being built: replaced by its full page in this change). */
import type { ConsolePage } from "../console-page.js";
import { sendPage } from "../console-page.js";
import { html } from "../html.js";

const subscriptionsPage: ConsolePage = {
  nav: { label: "Subscriptions", path: "subscriptions" },
  register(app) {
    app.get<{ Params: { entity: string } }>("/e/:entity/subscriptions", async (request, reply) => {
      sendPage(request, reply, {
        title: "Subscriptions",
        entity: request.params.entity,
        body: html`<p class="empty">Not built yet.</p>`,
      });
    });
  },
};

export default subscriptionsPage;
