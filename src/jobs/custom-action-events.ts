/**
 * The TRIGGER event of a custom action (SPEC §7.4): what the trigger call and a scenario's
 * CUSTOM_ACTION block append to the change log, in the transaction that decided it (the call's, or
 * the one that moves the run on), so a crash can neither lose nor double it (DESIGN §6b).
 *
 * Source CUSTOM_ACTION with the action's id as element (a subscription's `onElementId`), ordered
 * by the profile's id: one profile's triggers reach a receiver in the order they were decided.
 * The payload's fields are in `state` (domain/custom-action.ts triggerState), its links to the
 * profile and the action in `extra._links`, as the other trigger events keep theirs.
 */
import type { NewChangeEvent, Origin } from "../domain/change-event.js";
import type { CustomAction, TriggeringRun } from "../domain/custom-action.js";
import { customActionHref, triggerLinks, triggerState } from "../domain/custom-action.js";
import type { DataTable } from "../domain/data-table.js";
import type { RecordSnapshot } from "../capture/change-event-builders.js";
import { profileState } from "../capture/change-event-builders.js";

export { customActionHref };

export interface CustomActionTrigger {
  action: CustomAction;
  entityName: string;
  /** The profile table. */
  table: DataTable;
  profile: RecordSnapshot;
  /** renderActionParameters' result. */
  parameters: Record<string, string>;
  /** Absent for the trigger call. */
  run?: TriggeringRun;
  origin: Origin;
}

export function customActionTriggerEvent(trigger: CustomActionTrigger): NewChangeEvent {
  const { action, profile, table } = trigger;
  return {
    entityId: action.entityId,
    source: "CUSTOM_ACTION",
    sourceId: action.id,
    eventType: "TRIGGER",
    recordKey: String(profile.recordId),
    keys: { profileId: profile.recordId },
    state: triggerState({
      action,
      parameters: trigger.parameters,
      profile: profileState(profile),
      run: trigger.run,
    }),
    fields: [],
    previous: {},
    extra: { _links: triggerLinks(trigger.entityName, action.id, table.id, profile.recordId) },
    version: null,
    declaredEvents: [],
    origin: trigger.origin,
  };
}
