/** TypeBox schemas of the custom action routes (SPEC §7.4); they also document them in /openapi.json. */
import { Type } from "typebox";
import { VALUE_TYPES } from "../../domain/data-table.js";
import { Detail } from "./detail-schema.js";
import { PageParameter } from "./paging.js";

export const TAG = "custom actions";

export const EntityParams = Type.Object({ entity: Type.String() });
export const ActionParams = Type.Object({ entity: Type.String(), id: Type.String() });

export const Paging = Type.Object({
  page: PageParameter,
  pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
});

const Link = Type.Object({ href: Type.String() });

/** A definition as sent: read leniently by parseCustomAction (docs/custom-actions.md), so any object here. */
export const ActionBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    'A custom action: {"name", "description", "parameters": [{"name", "valueType": STRING|INTEGER|LONG|NUMBER|BOOLEAN|DATE|TIMESTAMP (default STRING), "mandatory" (default false)}]}',
});

export const ActionPatchBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    "The keys to change (name, description, parameters: the whole new list); the others keep their stored values",
});

export const Parameter = Type.Object({
  name: Type.String(),
  valueType: Type.Enum([...VALUE_TYPES]),
  mandatory: Type.Boolean(),
});

export const CustomAction = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  parameters: Type.Array(Parameter),
  createdAt: Type.String({ format: "date-time" }),
  updatedAt: Type.String({ format: "date-time" }),
  details: Type.Optional(Type.Array(Detail, { description: "Keys of the request Herald ignored" })),
  _links: Type.Object({ self: Link, trigger: Link }),
});

export const CustomActionList = Type.Object({
  customActions: Type.Array(CustomAction),
  page: Type.Integer(),
  pageSize: Type.Integer(),
  totalElements: Type.Integer(),
});

/** Read leniently (unknown keys are warnings), so checked by the route, not here. */
export const TriggerBody = Type.Record(Type.String(), Type.Unknown(), {
  description:
    '{"profileTable": "<name or id>", "profileKey": "<profileId or attribute=value of a unique attribute>", "parameters": {"<name>": <value>}}',
});

export const TriggerAccepted = Type.Object({
  eventId: Type.String({ description: "The TRIGGER event's id (`_event.id` of its payload)" }),
  details: Type.Optional(Type.Array(Detail, { description: "Keys of the request Herald ignored" })),
});
