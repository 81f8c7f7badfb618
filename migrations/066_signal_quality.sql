-- Signal-quality analytics (GetStats' closed-signal figures, GetSignalQuality).
--
-- Both read the closed signals of a window, never the other decisions: these
-- partial indexes hold only closed signals, with every column those reads
-- need, so a window is an index-only range scan instead of a walk through
-- every decision of the window. One is ordered by when the signal was decided
-- (the window of GetStats and of the consensus-strength buckets), the other by
-- when it closed (the time series' closed counts and cumulative R).

CREATE INDEX idx_decision_logs_closed_signals_decided ON decision_logs (decided_at)
    INCLUDE (symbol, outcome_closed_at, outcome_r_multiple, outcome_pnl, agreement_pct, effective_k,
             trader_count)
    WHERE decision_type = 'signal' AND outcome_pnl IS NOT NULL;

CREATE INDEX idx_decision_logs_closed_signals_closed ON decision_logs (outcome_closed_at)
    INCLUDE (symbol, outcome_r_multiple, outcome_pnl)
    WHERE decision_type = 'signal' AND outcome_pnl IS NOT NULL;
