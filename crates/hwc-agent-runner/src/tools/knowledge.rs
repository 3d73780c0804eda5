//! `search_knowledge {query, k}`: passages from the runbooks, postmortems
//! and docs of `[tools.knowledge]` and from past jobs' incident records,
//! each with its source and heading; the model cites the tool result's
//! event like any other evidence. Judged as the words `knowledge search`.

use super::{str_arg, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::model::ToolSpec;
use serde_json::{json, Value};
use std::time::Instant;

/// The knowledge search.
pub struct SearchKnowledge;

#[async_trait::async_trait]
impl Tool for SearchKnowledge {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "search_knowledge".into(),
            description: "Search the runbooks, postmortems, architecture docs and past incidents for passages about something (a symptom, an alert, a unit); each passage comes with its source and heading.".into(),
            parameters: json!({"type": "object", "required": ["query"], "properties": {
                "query": {"type": "string", "maxLength": 1000},
                "k": {"type": "integer", "minimum": 1, "maximum": 10}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let query = str_arg(args, "query")?.trim();
        if query.is_empty() {
            return Err(ToolError("`query` is empty".into()));
        }
        let max = ctx.tools.knowledge.max_k.max(1) as u64;
        let k = args["k"].as_u64().unwrap_or(5).clamp(1, max);
        Ok(Planned {
            tool: "search_knowledge".into(),
            arguments: json!({"query": query, "k": k}),
            subject: PlanSubject::Commands(vec![vec!["knowledge".into(), "search".into()]]),
            target: "knowledge".into(),
            rollback: None,
            claimed: None,
            summary: format!("knowledge search: {query}"),
            item: ItemKind::ToolCall,
            network: false,
            call_id: None,
            environment: None,
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let Some(k) = &ctx.knowledge else {
            return Err(ToolError(
                "no knowledge is configured on this runner ([tools.knowledge] paths)".into(),
            ));
        };
        let query = str_arg(&p.arguments, "query")?;
        let n = p.arguments["k"].as_u64().unwrap_or(5) as usize;
        let t0 = Instant::now();
        let passages = k.search(query, n).await.map_err(ToolError)?;
        let text = if passages.is_empty() {
            format!("nothing in the knowledge base matches `{query}`")
        } else {
            passages
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "[{}] {} > {}\n{}",
                        i + 1,
                        p.source,
                        p.heading,
                        p.text.trim()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n\n")
        };
        let problems = k.problems();
        let text = if problems.is_empty() {
            text
        } else {
            format!("{text}\n\n(not searched: {})", problems.join("; "))
        };
        Ok(ToolOutput::from_text(text, true, t0))
    }
}
