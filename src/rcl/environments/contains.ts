/**
 * The `contains` environment: a distant-supervision stand-in for an LLM (DESIGN §2). A document's
 * label is DPR `has_answer` on its text, and its score is that same label as 0/1. No network, no
 * model; deterministic. Closed-set requests are refused (there is no model to rank choices).
 */
import { createError } from '../../errors.ts';
import { createAnswerMatcher } from './answer-match.ts';
import type { DocScores, Environment, ScoreRequest } from './types.ts';

/** Options of the contains environment. */
export interface ContainsEnvironmentOptions {
  /**
   * Match against `title + "\n" + text` instead of the text alone. Default false: DPR's answer
   * recall checks the passage text only.
   */
  includeTitle?: boolean;
}

/**
 * Creates the contains environment.
 *
 * Scores are exactly 0 or 1 (S = L), with no tie-breaker, so the offline thresholds of a usable
 * query are always T⁺ = max S over negatives = 0 and T⁻ = min S over positives = 1
 * (research-notes §3.5). Online, `labelOnline` then gives positive iff S > 0 (the document
 * contains an answer) and negative iff S < 1 (it does not): nothing is ever excluded, and the
 * online label equals the offline one.
 *
 * An answer with no tokens (e.g. `""`) matches every document, as in DPR; such a query has no
 * negatives and is dropped by the offline stage.
 */
export function createContainsEnvironment(options: ContainsEnvironmentOptions = {}): Environment {
  const includeTitle = options.includeTitle ?? false;
  return {
    name: 'contains',
    fingerprint: `contains:dpr-string:v1:title=${includeTitle ? 1 : 0}`,
    async score(req: ScoreRequest): Promise<DocScores[]> {
      if (req.choices !== undefined) {
        throw createError('RCL_INPUT_INVALID', { reason: 'the contains environment cannot score closed-set choices' });
      }
      return req.docs.map((doc) => {
        const matches = createAnswerMatcher(includeTitle && doc.title ? `${doc.title}\n${doc.text}` : doc.text);
        return {
          docId: doc.id,
          perAnswer: req.answers.map((answer) => {
            const label = matches(answer) ? 1 : 0;
            return { answer, score: label, label };
          }),
        };
      });
    },
    async close() {},
  };
}
