/**
 * Answer normalisation and matching for benchmarks. Re-exports the single definition in
 * `src/rcl/environments/answer-match.ts` (DPR `has_answer`, SQuAD `normalize_answer`) so that
 * answer-recall metrics and RCL's `contains` labels can never disagree.
 */
export {
  dprTokens,
  hasAnswer,
  createAnswerMatcher,
  squadNormalize,
  squadExactMatch,
} from '../../src/rcl/environments/answer-match.ts';
