/**
 * The Environment contract: where RCL's RAG scores S and RAG labels L come from (DESIGN §1, §2;
 * research-notes §3.3). Types only; implementations live beside this file (`contains.ts`,
 * `openai.ts`), and the trainer-posted `client` scores never pass through an Environment.
 */

/** A document as given to the LLM prompt. */
export interface EnvironmentDoc {
  /** External document id (echoed back as `docId`). */
  id: string;
  title?: string;
  text: string;
}

/** One scoring request: a query, its gold answer entries, and the documents to score one at a time. */
export interface ScoreRequest {
  query: string;
  /**
   * Gold answer entries. Free-form: the answer strings, each scored separately (§3.3 "each gold
   * continuation is treated as a separate entry"). Closed-set: the gold choice(s), each one of `choices`.
   */
  answers: string[];
  docs: EnvironmentDoc[];
  /**
   * Closed-set tasks only: every choice continuation (e.g. `['true', 'false']`, `['A','B','C','D']`).
   * When present, an entry's label is 1 iff its gold choice is strictly the most probable choice,
   * and no generation is run (DESIGN §1, research-notes §3.3).
   */
  choices?: string[];
  /**
   * Whether labels are wanted (free-form only). Offline pools need them; online labelling uses
   * thresholds on S and can skip them. Default: the environment's own setting.
   */
  labels?: boolean;
}

/** The RAG score and label of one document for one answer entry. */
export interface AnswerScore {
  answer: string;
  /** S = P_LLM(answer | prompt(q, d)): the raw product of the answer-token probabilities, in [0, 1]. */
  score: number;
  /**
   * L: 1 when the generation with this document contains the answer (free-form), or when the gold
   * choice is the most probable (closed-set); null when labels were not computed.
   */
  label: 0 | 1 | null;
}

/** One document's scores, in the order of `ScoreRequest.answers`. */
export interface DocScores {
  docId: string;
  perAnswer: AnswerScore[];
  /** Closed-set only: P(choice | prompt(q, d)) for each of `ScoreRequest.choices`, in order. */
  choiceScores?: number[];
}

/** A source of RAG scores and labels. */
export interface Environment {
  /** `contains`, `openai`, … — part of the score-cache key with the model and prompt version. */
  readonly name: string;
  /**
   * Identifies everything the scores depend on besides (query, doc, answer): e.g. model id and
   * prompt template. Cached scores and thresholds are valid only under the same fingerprint
   * (research-notes §5.5).
   */
  readonly fingerprint: string;
  /** Scores every document of the request, one document per prompt; results follow `docs` order. */
  score(req: ScoreRequest, opts?: { signal?: AbortSignal }): Promise<DocScores[]>;
  /** Releases connections or workers. Safe to call twice. */
  close(): Promise<void>;
}
