//! Rendering cost of the guide's Slack payload, compiled once, rendered per
//! delivery: `cargo bench -p carehook-core --bench render`.

use std::hint::black_box;

use carehook_core::catalog::{Scope, lookup};
use carehook_core::template::{Context, Template, compile};
use criterion::{Criterion, criterion_group, criterion_main};

const SLACK: &str = r#"{
"text": "🏥 New Appointment Booked!",
"blocks": [
{
"type": "section",
"text": {
"type": "mrkdwn",
"text": "*Patient:* {{patient_name}}\n*Doctor:* {{doctor_name}}\n*Date:* {{appointment_date}} at {{appointment_start_time}}\n*Clinic:* {{clinic_name}}\n*Phone:* {{patient_contact_number}}"
}
},
{
"type": "actions",
"elements": [
{
"type": "button",
"text": {
"type": "plain_text",
"text": "View Details"
},
"url": "https://yoursite.com/appointments/{{appointment_id}}"
}
]
}
]
}"#;

fn bench_render(c: &mut Criterion) {
    let scope = Scope::new(&["kc_appointment_book"]).unwrap();
    let template: Template = compile(SLACK, Context::JsonBody, "body", &scope)
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
        b.iter(|| compile(black_box(SLACK), Context::JsonBody, "body", &scope).unwrap())
    });
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
