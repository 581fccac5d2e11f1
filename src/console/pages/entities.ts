/** The console's home: the entities the signed-in key reaches, each a link to its pages. */
import type { ConsolePage } from "../console-page.js";
import { consoleOf, dataTable, entityHref, sendPage } from "../console-page.js";
import { html, when } from "../html.js";

interface EntityBody {
  id: number;
  name: string;
  createdAt: string;
}

const entitiesPage: ConsolePage = {
  register(app) {
    app.get("/", async (request, reply) => {
      const { api, nav } = consoleOf(request);
      const { entities } = await api.get<{ entities: EntityBody[] }>("/v4/entity");
      const first = nav[0]?.path ?? "";
      sendPage(request, reply, {
        title: "Entities",
        body: dataTable(
          [
            {
              label: "Entity",
              cell: (e) => html`<a href="${entityHref(e.name)}/${first}">${e.name}</a>`,
            },
            { label: "Created", cell: (e) => when(e.createdAt) },
          ],
          entities,
          { empty: "This API key reaches no entity." },
        ),
      });
    });
    // An entity's own address opens its first page.
    app.get<{ Params: { entity: string } }>("/e/:entity", async (request, reply) => {
      const { api, nav } = consoleOf(request);
      // Asked through the API so that an entity out of the key's scope is refused here too.
      await api.get(`/v4/entity/${encodeURIComponent(request.params.entity)}`);
      return reply.redirect(`${entityHref(request.params.entity)}/${nav[0]?.path ?? ""}`, 303);
    });
  },
};

export default entitiesPage;
