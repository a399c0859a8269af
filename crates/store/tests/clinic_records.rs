//! Clinic records in the store, on SQLite and PostgreSQL: a record and the events it fires
//! commit together or not at all. Test `x` runs as `x::sqlite` and `x::postgres`.

use std::sync::Mutex;
use std::time::Duration;

use carehook_core::clinic::{FieldError, Kind, Record, Valid, validate};
use carehook_store::testing::{Backend, TestDatabase};
use carehook_store::*;
use serde_json::{Map, Value, json};

const T: i64 = 1_700_000_000_000;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some(db) = TestDatabase::new(Backend::Sqlite).await else { return };
                super::$name(&*db.connect().await).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = TestDatabase::new(Backend::Postgres).await else { return };
                super::$name(&*db.connect().await).await;
                db.cleanup().await;
            }
        }
    )*};
}

on_both_backends!(
    a_record_and_its_event_and_deliveries_commit_together,
    a_refused_event_rolls_the_record_back,
    a_reference_to_a_missing_record_is_rejected_by_field,
    a_record_others_refer_to_cannot_be_deleted,
    a_delete_event_sees_the_deleted_record,
    bills_are_numbered_per_clinic,
    lists_filter_through_parents_by_day_and_page,
);

/// A stand-in for the server's logic: the fields given (merged onto the old ones), and one
/// event per change with one delivery to `webhook`, unless told to refuse.
struct Logic {
    kind: Kind,
    input: Value,
    webhook: Option<WebhookId>,
    refuse: bool,
    seen: Mutex<Vec<String>>,
}

fn logic(kind: Kind, input: Value) -> Logic {
    Logic {
        kind,
        input,
        webhook: None,
        refuse: false,
        seen: Mutex::new(Vec::new()),
    }
}

impl RecordLogic for Logic {
    fn plan(&self, old: Option<&Record>) -> Result<Valid> {
        let mut fields: Map<String, Value> = Map::new();
        if let Some(old) = old {
            fields = old.data.clone();
            for r in self.kind.refs() {
                fields.insert(r.column().into(), old.refs.get(r).into());
            }
        }
        for (k, v) in self.input.as_object().unwrap() {
            fields.insert(k.clone(), v.clone());
        }
        Ok(validate(self.kind, &fields)?)
    }

    fn check(&self, _: &mut Valid, linked: &Linked) -> Result<()> {
        let kinds: Vec<String> = linked.records.keys().map(|k| format!("{k:?}")).collect();
        self.seen.lock().unwrap().push(kinds.join(","));
        Ok(())
    }

    fn fire(&self, a: &Applied<'_>) -> Result<Fired> {
        if self.refuse {
            return Err(FieldError::new("status", "refused by the test").into());
        }
        let mut vars = carehook_core::Vars::new();
        vars.insert("id".into(), a.record.id.to_string());
        vars.insert("name".into(), a.record.text("name").into());
        vars.insert("payments".into(), a.linked.payments.len().to_string());
        Ok(Fired {
            events: vec![NewEvent {
                id: EventId::new(),
                event_type: format!("{:?}:{:?}", a.record.kind, a.op),
                vars,
                idempotency_key: None,
                created_at: T,
                deliveries: self
                    .webhook
                    .map(|w| NewDelivery {
                        id: DeliveryId::new(),
                        webhook_id: w,
                        next_attempt_at: T,
                        is_test: false,
                        ordering_key: None,
                        scheduled: None,
                    })
                    .into_iter()
                    .collect(),
                reschedule: Vec::new(),
            }],
            updates: vec![],
        })
    }
}

async fn create(store: &dyn Store, kind: Kind, input: Value) -> Record {
    store
        .change_record(kind, Target::Create, &logic(kind, input), T)
        .await
        .unwrap_or_else(|e| panic!("creating a {kind:?}: {e}"))
        .record
}

async fn clinic(store: &dyn Store, name: &str) -> i64 {
    create(store, Kind::Clinic, json!({"name": name})).await.id
}

/// A clinic with a doctor, a patient and an encounter: (clinic, encounter).
async fn encounter(store: &dyn Store, name: &str) -> (i64, i64) {
    let c = clinic(store, name).await;
    let person = json!({"clinic_id": c, "first_name": "A", "last_name": "B"});
    let d = create(store, Kind::Doctor, person.clone()).await.id;
    let p = create(store, Kind::Patient, person).await.id;
    let e = create(
        store,
        Kind::Encounter,
        json!({"clinic_id": c, "doctor_id": d, "patient_id": p, "date": "2026-11-26"}),
    )
    .await
    .id;
    (c, e)
}

async fn count(store: &dyn Store, kind: Kind) -> usize {
    store
        .list_records(kind, RecordFilter::default())
        .await
        .unwrap()
        .items
        .len()
}

async fn event_count(store: &dyn Store) -> usize {
    store.list_events(1000, None).await.unwrap().items.len()
}

async fn a_record_and_its_event_and_deliveries_commit_together(store: &dyn Store) {
    let hook = store
        .create_webhook(NewWebhook {
            id: WebhookId::new(),
            name: "h".into(),
            enabled: true,
            events: vec!["*".into()],
            config: json!({}),
        })
        .await
        .unwrap()
        .id;
    let mut wake = store.watch_deliveries();
    wake.borrow_and_update();
    let mut l = logic(Kind::Clinic, json!({"name": "Clínica d'Ávila 🏥"}));
    l.webhook = Some(hook);
    let changed = store
        .change_record(Kind::Clinic, Target::Create, &l, T)
        .await
        .unwrap();
    assert_eq!(changed.record.text("name"), "Clínica d'Ávila 🏥");
    assert_eq!(changed.record.created_at, T);
    let Recorded::Created {
        event_id,
        delivery_ids,
    } = &changed.events[0]
    else {
        panic!("not created: {:?}", changed.events)
    };
    let event = store.get_event(*event_id).await.unwrap().unwrap();
    assert_eq!(event.vars["id"], changed.record.id.to_string());
    let (delivery, _) = store.get_delivery(delivery_ids[0]).await.unwrap().unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert_eq!(delivery.webhook_id, hook);
    tokio::time::timeout(Duration::from_secs(5), wake.changed())
        .await
        .expect("the dispatcher is woken")
        .unwrap();
    assert_eq!(
        store
            .get_record(Kind::Clinic, changed.record.id)
            .await
            .unwrap()
            .unwrap(),
        changed.record
    );

    // An update reads the old record and writes the new one, in place.
    let updated = store
        .change_record(
            Kind::Clinic,
            Target::Update(changed.record.id),
            &logic(Kind::Clinic, json!({"city": "Madrid"})),
            T + 5,
        )
        .await
        .unwrap()
        .record;
    assert_eq!(updated.id, changed.record.id);
    assert_eq!(updated.text("name"), "Clínica d'Ávila 🏥");
    assert_eq!(updated.text("city"), "Madrid");
    assert_eq!((updated.created_at, updated.updated_at), (T, T + 5));
}

async fn a_refused_event_rolls_the_record_back(store: &dyn Store) {
    let c = clinic(store, "One").await;
    let before = event_count(store).await;
    let mut l = logic(
        Kind::Doctor,
        json!({"clinic_id": c, "first_name": "A", "last_name": "B"}),
    );
    l.refuse = true;
    let err = store
        .change_record(Kind::Doctor, Target::Create, &l, T)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Rejected(ref f) if f.field == "status"),
        "{err}"
    );
    assert_eq!(count(store, Kind::Doctor).await, 0);
    assert_eq!(event_count(store).await, before);
    // An update refused likewise leaves the record as it was.
    let mut l = logic(Kind::Clinic, json!({"name": "Two"}));
    l.refuse = true;
    assert!(
        store
            .change_record(Kind::Clinic, Target::Update(c), &l, T)
            .await
            .is_err()
    );
    let kept = store.get_record(Kind::Clinic, c).await.unwrap().unwrap();
    assert_eq!(kept.text("name"), "One");
    // The next record still gets a fresh id and the store still writes.
    assert!(clinic(store, "Three").await > c);
}

async fn a_reference_to_a_missing_record_is_rejected_by_field(store: &dyn Store) {
    let c = clinic(store, "One").await;
    let before = event_count(store).await;
    let err = store
        .change_record(
            Kind::Appointment,
            Target::Create,
            &logic(
                Kind::Appointment,
                json!({"clinic_id": c, "doctor_id": 999, "patient_id": 998,
                       "date": "2026-11-26", "start_time": "10:00"}),
            ),
            T,
        )
        .await
        .unwrap_err();
    match err {
        StoreError::Rejected(f) => {
            assert_eq!(f.field, "doctor_id");
            assert!(f.message.contains("no doctor 999"), "{}", f.message);
        }
        other => panic!("{other}"),
    }
    assert_eq!(count(store, Kind::Appointment).await, 0);
    assert_eq!(event_count(store).await, before);
    let missing = store
        .change_record(
            Kind::Clinic,
            Target::Update(4242),
            &logic(Kind::Clinic, json!({})),
            T,
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound));
}

async fn a_record_others_refer_to_cannot_be_deleted(store: &dyn Store) {
    let (c, e) = encounter(store, "One").await;
    let before = event_count(store).await;
    let err = store
        .change_record(
            Kind::Clinic,
            Target::Delete(c),
            &logic(Kind::Clinic, json!({})),
            T,
        )
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(m) => assert!(m.contains("still has"), "{m}"),
        other => panic!("{other}"),
    }
    assert_eq!(event_count(store).await, before);
    store
        .change_record(
            Kind::Encounter,
            Target::Delete(e),
            &logic(Kind::Encounter, json!({})),
            T,
        )
        .await
        .unwrap();
    assert!(
        store
            .get_record(Kind::Encounter, e)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_delete_event_sees_the_deleted_record(store: &dyn Store) {
    let c = clinic(store, "Gone Clinic").await;
    let l = logic(Kind::Clinic, json!({}));
    let changed = store
        .change_record(Kind::Clinic, Target::Delete(c), &l, T)
        .await
        .unwrap();
    assert_eq!(changed.record.text("name"), "Gone Clinic");
    let event = store
        .get_event(changed.events[0].event_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.event_type, "Clinic:Delete");
    assert_eq!(event.vars["name"], "Gone Clinic");
    assert!(store.get_record(Kind::Clinic, c).await.unwrap().is_none());
    // Ids are never reused: an old event's "clinic 1" stays that clinic.
    assert!(clinic(store, "New").await > c);
}

async fn bills_are_numbered_per_clinic(store: &dyn Store) {
    let (_, e1) = encounter(store, "One").await;
    let (_, e2) = encounter(store, "Two").await;
    let bill = |e: i64| json!({"encounter_id": e, "total": "10.00"});
    let seqs = [
        create(store, Kind::Bill, bill(e1)).await,
        create(store, Kind::Bill, bill(e1)).await,
        create(store, Kind::Bill, bill(e2)).await,
    ]
    .map(|b| b.bill_number());
    assert_eq!(seqs, ["BILL-0001", "BILL-0002", "BILL-0001"]);
    // A payment's logic sees the bill, its encounter, and the bill's payments (its own too).
    let b = create(store, Kind::Bill, bill(e2)).await.id;
    let l = logic(Kind::Payment, json!({"bill_id": b, "amount": "4.00"}));
    let changed = store
        .change_record(Kind::Payment, Target::Create, &l, T)
        .await
        .unwrap();
    assert_eq!(
        l.seen.lock().unwrap()[0],
        "Clinic,Doctor,Patient,Encounter,Bill"
    );
    let event = store
        .get_event(changed.events[0].event_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.vars["payments"], "1");
}

async fn lists_filter_through_parents_by_day_and_page(store: &dyn Store) {
    let (c1, e1) = encounter(store, "One").await;
    let (c2, _) = encounter(store, "Two").await;
    for total in ["1", "2", "3"] {
        create(
            store,
            Kind::Bill,
            json!({"encounter_id": e1, "total": total}),
        )
        .await;
    }
    let bills = |c: i64, limit: u32, cursor: Option<String>| RecordFilter {
        refs: vec![(carehook_core::clinic::Ref::Clinic, c)],
        limit,
        cursor,
        ..RecordFilter::default()
    };
    assert_eq!(
        store
            .list_records(Kind::Bill, bills(c2, 0, None))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    let first = store
        .list_records(Kind::Bill, bills(c1, 2, None))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = store
        .list_records(Kind::Bill, bills(c1, 2, first.next_cursor.clone()))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_cursor.is_none());
    assert!(rest.items[0].id > first.items[1].id);

    let by_day = |from: &str, to: &str| RecordFilter {
        day_from: Some(from.into()),
        day_to: Some(to.into()),
        ..RecordFilter::default()
    };
    let on_day = store
        .list_records(Kind::Encounter, by_day("2026-11-26", "2026-11-26"))
        .await
        .unwrap();
    assert_eq!(on_day.items.len(), 2);
    let none = store
        .list_records(Kind::Encounter, by_day("2026-11-27", "2026-12-31"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert!(matches!(
        store
            .list_records(Kind::Patient, by_day("2026-01-01", "2026-12-31"))
            .await,
        Err(StoreError::Invalid(_))
    ));
}
