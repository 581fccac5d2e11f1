/**
 * Custom actions (SPEC §7.4): a named call to an outside system with typed parameters. Triggering
 * one (the trigger call, or a scenario's CUSTOM_ACTION block) appends a TRIGGER event whose payload
 * carries the parameters, rendered as strings, and every attribute of the profile.
 */
import type { ValueType } from "./data-table.js";

export interface CustomActionParameter {
  name: string;
  valueType: ValueType;
  mandatory: boolean;
}

/** A custom action's definition as stored (parseCustomAction's result). */
export interface CustomActionDefinition {
  name: string;
  description: string | null;
  parameters: CustomActionParameter[];
}

export interface CustomAction extends CustomActionDefinition {
  id: string;
  entityId: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A scenario run that triggered the action (absent for the trigger call). */
export interface TriggeringRun {
  scenarioId: string;
  runId: string;
}
