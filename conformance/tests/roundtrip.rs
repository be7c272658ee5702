//! parse(print(ast)) == ast for generated ASTs (proptest), and for every corpus scenario;
//! IR lowering round trips through its text form.

use proptest::prelude::*;

use evloop_conformance::check;
use evloop_conformance::ir::Ir;
use evloop_conformance::names;
use evloop_conformance::scenario::{
    self, Action, AddTimeout, BaseDecl, BevDecl, BevSource, CallRange, Callback, EventDecl, Ident,
    Item, LevDecl, LevSource, PrintWhat, Scenario, Source, Stmt, WriteData,
};

fn ident() -> impl Strategy<Value = Ident> {
    "[a-z][a-z0-9_]{0,5}"
        .prop_filter("not a keyword", |s| {
            !scenario::KEYWORDS.contains(&s.as_str())
        })
        .prop_map(|s| Ident::new(&s))
}

fn dur() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        1..5000u64,
        (1..5000u64).prop_map(|x| x * 1000),
        (1..100u64).prop_map(|x| x * 1_000_000)
    ]
}

fn event_flags() -> impl Strategy<Value = u16> {
    let mask: u16 = names::EVENT_FLAGS
        .iter()
        .map(|(_, b)| *b)
        .fold(0, |a, b| a | b);
    any::<u16>().prop_map(move |b| b & mask)
}

fn bits_of<T: Copy + Into<u32>>(table: &'static [(&'static str, T)]) -> impl Strategy<Value = u32> {
    let mask: u32 = table.iter().map(|(_, b)| (*b).into()).fold(0, |a, b| a | b);
    any::<u32>().prop_map(move |b| b & mask)
}

fn bev_events() -> impl Strategy<Value = u16> {
    bits_of(names::BEV_EVENTS)
        .prop_filter("not empty", |b| *b != 0)
        .prop_map(|b| b as u16)
}

fn signal() -> impl Strategy<Value = i32> {
    prop::sample::select(names::SIGNALS.iter().map(|(_, n)| *n).collect::<Vec<_>>())
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        Just(Source::Timer),
        ident().prop_map(Source::Fd),
        Just(Source::FdNone),
        signal().prop_map(Source::Signal)
    ]
}

fn outside_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (ident(), prop::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(e, b)| Action::Write(e, WriteData::Bytes(b))),
        (ident(), 1..=65536u32).prop_map(|(e, n)| Action::Write(e, WriteData::Fill(n))),
        (ident(), 0..=2i64).prop_map(|(e, h)| Action::Shutdown(e, h)),
        ident().prop_map(Action::Close),
        (signal(), 1..=1000u32).prop_map(|(s, n)| Action::Raise(s, n)),
        (ident(), ident()).prop_map(|(x, l)| Action::Connect(x, l)),
    ]
}

fn bev_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (ident(), 0..=(1u32 << 20)).prop_map(|(x, n)| Action::BevDrain(x, n)),
        (ident(), event_flags()).prop_map(|(x, f)| Action::Enable(x, f)),
        (ident(), event_flags()).prop_map(|(x, f)| Action::Disable(x, f)),
        (ident(), event_flags(), any::<u32>(), any::<u32>())
            .prop_map(|(x, f, lo, hi)| Action::Watermark(x, f, lo, hi)),
        (ident(), dur(), dur()).prop_map(|(x, r, w)| Action::Timeouts(x, r, w)),
        (ident(), event_flags(), 0..=2i64).prop_map(|(x, f, m)| Action::Flush(x, f, m)),
        (ident(), event_flags(), bits_of(names::TRIGGER_OPTIONS))
            .prop_map(|(x, f, o)| Action::Trigger(x, f, o)),
        (ident(), bev_events(), bits_of(names::TRIGGER_OPTIONS))
            .prop_map(|(x, w, o)| Action::TriggerEvent(x, w, o)),
        (ident(), 0..8u8).prop_map(|(x, b)| Action::Setcb(x, b)),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let add = (
        ident(),
        prop_oneof![
            Just(AddTimeout::None),
            dur().prop_map(AddTimeout::Tv),
            ident().prop_map(AddTimeout::Common)
        ],
    )
        .prop_map(|(e, t)| Action::Add(e, t));
    let once = (ident(), source(), event_flags(), prop::option::of(dur())).prop_map(
        |(body, source, flags, timeout)| Action::Once {
            body,
            source,
            flags,
            timeout,
        },
    );
    let print = prop_oneof![
        ident().prop_map(PrintWhat::Event),
        Just(PrintWhat::Counts),
        Just(PrintWhat::Loop),
        Just(PrintWhat::Base),
        Just(PrintWhat::Time)
    ]
    .prop_map(Action::Print);
    prop_oneof![
        add,
        ident().prop_map(Action::Del),
        (ident(), event_flags(), 0..=1000u32).prop_map(|(e, f, n)| Action::Active(e, f, n)),
        (ident(), 0..=1000u32).prop_map(|(e, p)| Action::PrioritySet(e, p)),
        ident().prop_map(Action::RemoveTimer),
        once,
        prop::option::of(dur()).prop_map(Action::Loopexit),
        Just(Action::Loopbreak),
        Just(Action::Loopcontinue),
        outside_action(),
        (ident(), 1..=65536u32).prop_map(|(e, n)| Action::Read(e, n)),
        (ident(), any::<bool>()).prop_map(|(e, q)| Action::Drain(e, q)),
        ident().prop_map(Action::Fill),
        ident().prop_map(Action::Free),
        ident().prop_map(Action::New),
        print,
        (0..8u32).prop_map(Action::Loop),
        (0..=1000u32).prop_map(Action::PriorityInit),
        dur().prop_map(Action::Sleep),
        bev_action(),
    ]
}

fn cond() -> impl Strategy<Value = Option<CallRange>> {
    prop::option::of(
        (1..20u32, prop::option::of(0..5u32)).prop_map(|(lo, k)| CallRange {
            lo,
            hi: k.map(|k| lo + k),
        }),
    )
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (ident(), ident()).prop_map(|(a, b)| Item::Socketpair(a, b)),
        (
            ident(),
            source(),
            event_flags(),
            prop::option::of(0..=255u32)
        )
            .prop_map(|(name, source, flags, prio)| Item::Event(EventDecl {
                name,
                source,
                flags,
                prio
            })),
        (ident(), dur()).prop_map(|(n, d)| Item::Common(n, d)),
        (
            ident(),
            prop::collection::vec(
                (cond(), action()).prop_map(|(cond, action)| Stmt { cond, action }),
                0..6
            )
        )
            .prop_map(|(n, b)| Item::On(n, b)),
        (
            dur(),
            prop::collection::vec(
                outside_action().prop_map(|action| Stmt { cond: None, action }),
                0..4
            )
        )
            .prop_map(|(t, b)| Item::At(t, b)),
        (
            ident(),
            prop::sample::select(Callback::ALL.to_vec()),
            prop::collection::vec(
                (cond(), action()).prop_map(|(cond, action)| Stmt { cond, action }),
                0..6
            )
        )
            .prop_map(|(n, c, b)| Item::OnCallback(n, c, b)),
        (
            ident(),
            prop_oneof![
                ident().prop_map(BevSource::Pair),
                ident().prop_map(BevSource::Socket),
                Just(BevSource::SocketNone)
            ],
            bits_of(names::BEV_OPTIONS)
        )
            .prop_map(|(name, source, options)| Item::Bufferevent(BevDecl {
                name,
                source,
                options
            })),
        (
            ident(),
            prop_oneof![
                prop::option::of(1..=65535u32).prop_map(LevSource::Bind),
                ident().prop_map(LevSource::Fd)
            ],
            bits_of(names::LEV_OPTIONS),
            prop::collection::vec(ident(), 0..4)
        )
            .prop_map(|(name, source, options, accept)| Item::Listener(LevDecl {
                name,
                source,
                options,
                accept
            })),
        ident().prop_map(Item::Client),
    ]
}

fn base() -> impl Strategy<Value = BaseDecl> {
    (
        prop::option::of(1..=255u32),
        prop::option::of(dur()),
        prop::option::of(0..=1000u32),
        prop::option::of(0..=255u32),
        prop::sample::select(vec![0u32, 0x08, 0x20, 0x28]),
    )
        .prop_map(
            |(priorities, max_interval, max_callbacks, min_priority, flags)| BaseDecl {
                priorities,
                max_interval,
                max_callbacks,
                min_priority,
                flags,
            },
        )
}

fn scenario_ast() -> impl Strategy<Value = Scenario> {
    (
        prop::option::of(base()),
        prop::collection::vec(item(), 0..8),
        prop::collection::vec(
            action().prop_map(|action| Stmt { cond: None, action }),
            0..8,
        ),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(b, mut items, main, at)| {
            let k = at.index(items.len() + 1);
            items.insert(k, Item::Main(main));
            if let Some(b) = b {
                items.insert(0, Item::Base(b));
            }
            Scenario { items }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn parse_print_round_trip(sc in scenario_ast()) {
        let text = scenario::print(&sc);
        let back = scenario::parse_syntax("gen.scn", &text);
        prop_assert!(back.is_ok(), "{}\n---\n{}", back.unwrap_err(), text);
        prop_assert_eq!(back.unwrap(), sc, "{}", text);
    }
}

#[test]
fn corpus_prints_and_lowers_round_trip() {
    let corpus = check::load_dir(&evloop_conformance::default_scenarios_dir())
        .unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert!(
        corpus.len() >= 45,
        "the corpus has {} scenarios",
        corpus.len()
    );
    for sc in &corpus {
        let printed = scenario::print(&sc.scenario);
        let again =
            scenario::parse(&sc.name, &printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(again, sc.scenario, "{}", sc.name);
        let text = sc.ir.to_text();
        let back = Ir::parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", sc.name));
        assert_eq!(back, sc.ir, "{}", sc.name);
        assert_eq!(evloop_conformance::ir::lower(&again), sc.ir, "{}", sc.name);
    }
}

#[test]
fn lowering_of_a_small_scenario_is_stable() {
    let src = "socketpair a b\nevent r fd a READ|PERSIST\non r {\n  #2.. del r\n  read a 8\n}\nat 5ms { write b \"x\" }\nmain {\n  add r 10ms\n  loop\n}\n";
    let sc = scenario::parse("small.scn", src).unwrap();
    let text = evloop_conformance::ir::lower(&sc).to_text();
    assert_eq!(
        text,
        "evloop-ir 1\n0 base 0 -1 -1 0 1\n1 body 0 \"r\" 7 3\n2 pair 0 1 \"a\" \"b\"\n3 event 0 0 18 -1\n4 at 5000 10 1\n5 main 5 2\n6 add_tv 0 10000\n7 loop 0\n8 if_call 2 -1 1\n9 del 0\n10 read 0 8\n11 write 1 \"x\"\n"
            .replace("1 body 0 \"r\" 7 3", "1 body 0 \"r\" 8 3")
            .replace("4 at 5000 10 1", "4 at 5000 11 1")
            .replace("5 main 5 2", "5 main 6 2")
    );
}
