//! Rendering cost of the guide's Slack payload, compiled once, rendered per
//! delivery: `cargo bench -p carehook-core --bench render`.

use std::hint::black_box;

use carehook_core::catalog::{Scope, lookup};
use carehook_core::template::{Context, Template, compile};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench_render(c: &mut Criterion) {
    // The guide's Slack payload, as its preset carries it.
    let slack = carehook_core::presets::lookup("slack_new_appointment")
        .unwrap()
        .body;
    let scope = Scope::new(&["kc_appointment_book"]).unwrap();
    let template: Template = compile(slack, Context::JsonBody, "body", &scope)
        .unwrap()
        .template;
    let vars = lookup("kc_appointment_book").unwrap().example_vars();
    c.bench_function("render slack payload", |b| {
        b.iter(|| black_box(&template).render(black_box(&vars)).unwrap())
    });
    let mut buf = String::with_capacity(1024);
    c.bench_function("render slack payload into a reused buffer", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&template)
                .render_into(black_box(&vars), &mut buf)
                .unwrap();
        })
    });
    c.bench_function("compile slack payload", |b| {
        b.iter(|| compile(black_box(slack), Context::JsonBody, "body", &scope).unwrap())
    });
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
