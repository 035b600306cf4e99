/**
 * On-policy rollouts handed to external trainers: the candidates of each query under the θ
 * version current at creation. Kept in memory with a time-to-live; a rollout is a promise of
 * candidates, not data that must survive a restart (the trainer asks again).
 */
import { randomUUID } from 'node:crypto';
import { createError } from '../errors.ts';

export interface Rollout {
  id: string;
  collection: string;
  version: number;
  createdAt: number;
  queries: Map<string, { text: string; docs: string[] }>;
}

/** Most rollouts kept at once; the oldest are dropped first. */
const MAX_ROLLOUTS = 10_000;

export class Rollouts {
  private readonly ttlMs: number;
  private readonly items = new Map<string, Rollout>();

  constructor(ttlMs: number) {
    this.ttlMs = ttlMs;
  }

  create(collection: string, version: number, queries: Array<{ id: string; text: string; docs: string[] }>): Rollout {
    this.expire();
    const r: Rollout = { id: randomUUID(), collection, version, createdAt: Date.now(), queries: new Map(queries.map((q) => [q.id, { text: q.text, docs: q.docs }])) };
    this.items.set(r.id, r);
    while (this.items.size > MAX_ROLLOUTS) this.items.delete(this.items.keys().next().value!);
    return r;
  }

  get(id: string, collection: string): Rollout {
    this.expire();
    const r = this.items.get(id);
    if (!r || r.collection !== collection) throw createError('RCL_ROLLOUT_NOT_FOUND', { id });
    return r;
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, r] of this.items) {
      if (now - r.createdAt <= this.ttlMs) break;
      this.items.delete(id);
    }
  }
}
