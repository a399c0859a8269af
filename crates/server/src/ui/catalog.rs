//! The event catalog: every event, its aliases, and each variable with its
//! type, description and example (the demo clinic's values).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use carehook_core::catalog::{self, EventType};

use super::session::Admin;
use super::{Page, UiState, html};

#[derive(Template)]
#[template(path = "ui/events.html")]
struct EventsPage {
    page: Page,
    events: &'static [EventType],
}

pub async fn page(State(state): State<UiState>, admin: Admin) -> Response {
    html(&EventsPage {
        page: Page::new(&state, &admin, "Events", "events").await,
        events: catalog::events(),
    })
}
